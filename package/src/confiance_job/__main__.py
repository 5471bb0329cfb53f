"""python -m confiance_job: the same as the confiance-job command."""

import sys

from .cli import main

sys.exit(main())
