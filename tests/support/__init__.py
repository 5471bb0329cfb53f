"""The test suite's support library: processes, virtualenvs, the template and its option matrix,
and stand-ins for what lives on the company network (engines, registry, GitLab, PyPI, MLflow,
Airflow). Tests, fixtures (conftest.py) and the bench import it; it never imports a test."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"

# The platform's package, from this checkout (its rules are what the tests check against).
sys.path.insert(0, str(ROOT / "package" / "src"))
# The tools installed next to this python (ruff, check-jsonschema, pre-commit, uv) come first.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
# Make runs as a person types it: not as a sub-make of `make test` (which would add its jobserver
# and print "make[1]: Entering directory").
for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
    os.environ.pop(name, None)
