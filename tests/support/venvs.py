"""Virtualenvs under .cache/venvs: the Airflow lines a DAG must work on, and the tools next to them."""

import fcntl
import shutil
import sys

from confiance_job.rules import AIRFLOW_PROVIDERS, SLACK_PROVIDERS, TOOLS

from support import CACHE, ROOT
from support.commands import run

# The Airflow lines a generated DAG must work on, each with its providers; named by major version.
AIRFLOW_LINES = {
    f"airflow{version[0]}": [
        f"apache-airflow=={version}",
        f"apache-airflow-providers-cncf-kubernetes=={provider}",
        f"apache-airflow-providers-slack=={SLACK_PROVIDERS[version]}",
    ]
    for version, provider in AIRFLOW_PROVIDERS.items()
}
# The platform's tooling (editable: the tests always run this checkout's code) and the test tools.
AIRFLOW_TOOLS = ["-e", str(ROOT / "package")] + [f"{tool}=={TOOLS[tool]}" for tool in ("kubernetes-validate", "pytest")]


def ensure_venv(name, requirements):
    """A virtualenv under .cache/venvs with exactly these requirements; built once, reused after."""
    venv = CACHE / "venvs" / name
    python = venv / "bin" / "python"
    wanted = "\n".join(requirements)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{name}.lock", "w") as lock:  # pytest-xdist workers may race here
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / "requirements.lock"
        if not (marker.exists() and marker.read_text() == wanted and python.exists()):
            shutil.rmtree(venv, ignore_errors=True)
            run(["uv", "venv", "--quiet", "--python", sys.executable, venv])
            run(["uv", "pip", "install", "--quiet", "--python", python, *requirements], timeout=900)
            marker.write_text(wanted)
    return python
