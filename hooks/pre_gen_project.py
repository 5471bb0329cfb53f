"""Check every answer before a single file is written (the rules: confiance_job.answers).

All problems are reported at once, each with the field, the rule and a valid example;
any problem stops the generation (exit 1), and cookiecutter removes the half-made folder.
"""

import json
import sys

ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})
sys.path.insert(0, {{ template_dir | tojson }})  # the template's folder, whose package/ holds the rules
import local_extensions  # noqa: E402, F401, I001  (first: it puts the template's package on the path)
from confiance_job.answers import forget_secrets, problems, report  # noqa: E402

found = problems(ANSWERS)
forget_secrets(ANSWERS)  # a webhook URL typed as an answer leaves no copy behind
if found:
    print(report(found, updating="_commit" in ANSWERS), file=sys.stderr)  # cruft update: nothing changed
    sys.exit(1)
