{%- set steps = cookiecutter.steps | items -%}
"""{{ cookiecutter.project_name | docstring }}: {{ cookiecutter.description | docstring }}

Each step of the job is a subcommand, run by one pod in Airflow:

    python main.py {{ steps[0] }}             # run the step
    python main.py {{ steps[0] }} --dry-run   # only say what it would do

Put your code in the step functions below. Settings come from command-line
options or environment variables (the DAG and the Trigger form set those):
DATA_DIR holds shared inputs; RUN_DIR is this run's own folder, where the steps
of one run pass files to each other and no other run writes.
"""

import argparse
import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("{{ cookiecutter.project_slug }}")


# ---- Your code goes here: one function per step, in the order they run. ----
{% for step in steps %}

def {{ step }}(settings):
    """The '{{ step }}' step. Replace this example with your code."""
{%- if loop.first %}
    # RUN_ID and IMAGE_TAG say which run and which version made a result: tag your outputs
    # (or MLflow runs: mlflow.set_tags({"airflow_run_id": settings.run_id})) with them.
    result = {"step": "{{ step }}", "run_id": settings.run_id, "image_tag": settings.image_tag}
{%- else %}
    # Steps of one run share files through the run folder (on NFS in the cluster).
    previous = load_json(settings.run_dir / "{{ steps[loop.index0 - 1] }}.json")
    result = {"step": "{{ step }}", "after": previous["step"], "run_id": settings.run_id}
{%- endif %}
    save_json(settings, "{{ step }}.json", result)
{% endfor %}

STEPS = { {%- for step in steps %}"{{ step }}": {{ step }}{{ ", " if not loop.last }}{% endfor -%} }


# ---- Plumbing: settings, logging, exit codes. You rarely need to edit this. ----


def save_json(settings, name, data):
    """Write data to <run dir>/<name>, or only log it with --dry-run."""
    path = settings.run_dir / name
    data = {**data, "written_at": datetime.now(timezone.utc).isoformat()}
    if settings.dry_run:
        log.info("dry run: would write %s: %s", path, data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    log.info("wrote %s", path)


def load_json(path):
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: did the previous step run with the same RUN_DIR?")
    return json.loads(path.read_text())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=STEPS, help="the step to run")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("DATA_DIR", "data")),
        help="folder of shared inputs (env DATA_DIR, default: %(default)s)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=os.environ.get("RUN_DIR"),
        help="this run's own folder, where steps write (env RUN_DIR, default: <data dir>/runs/<run id>)",
    )
    parser.add_argument("--run-id", default=os.environ.get("RUN_ID", "local"), help="env RUN_ID, default: %(default)s")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="env LOG_LEVEL, default: %(default)s",
    )
    settings = parser.parse_args(argv)
    settings.run_dir = settings.run_dir or settings.data_dir / "runs" / settings.run_id
    settings.image_tag = os.environ.get("IMAGE_TAG", "dev")  # set by the DAG: the image's version
    return settings


def main(argv=None):
    settings = parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout,  # pod logs show stdout in Airflow
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,  # replace any earlier logging setup
    )
    mode = " (dry run)" if settings.dry_run else ""
    log.info("step %s of run %s starts%s, run dir %s", settings.step, settings.run_id, mode, settings.run_dir)
    try:
        STEPS[settings.step](settings)
    except Exception:
        log.exception("step %s failed", settings.step)
        return 1  # a non-zero exit marks the Airflow task as failed
    log.info("step %s done", settings.step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
