{%- set steps = cookiecutter.steps | items -%}
{%- set swept = cookiecutter.sweep_steps | items -%}
"""{{ cookiecutter.project_name | docstring }}: {{ cookiecutter.description | docstring }}

Each step of the job is a subcommand, run by one pod in Airflow:

    python main.py {{ steps[0] }}             # run the step
    python main.py {{ steps[0] }} --dry-run   # only say what it would do

Put your code in the step functions below. Settings come from command-line
options or environment variables (the DAG and the Trigger form set those):
DATA_DIR holds shared inputs; RUN_DIR is this run's own folder, where the steps
of one run pass files to each other and no other run writes.{% if cookiecutter.mlflow_tracking_uri.strip() %}
Every step of one Airflow run logs into one MLflow run (see mlflow_run below).{% endif %}

Keep these promises, the repo's tests check them (tests/test_main.py): each step
exits 0 when it worked and 1 with the reason logged when it failed; --dry-run
writes nothing, for every step, even before any step has run.
"""

import argparse
import contextlib
import json
import logging
{%- if swept %}
import math
{%- endif %}
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("{{ cookiecutter.project_slug }}")


# ---- Your code goes here: one function per step, in the order they run. ----
{% for step in steps %}
{%- set before = steps[loop.index0 - 1] if not loop.first else '' %}

def {{ step }}(settings):
    """The '{{ step }}' step. Replace this example with your code.
{%- if step in swept %}
    A sweep runs it as several pods at once, each with its own values as environment variables and
    its own folder, settings.out_dir (README: Sweeps).
{%- endif %}
{%- if before in swept %}
    After a sweep of {{ before }}, it gets the result of each of its pods, and picks the best.
{%- endif %}"""
{%- if before in swept %}
    # Every pod of the sweep wrote its result in a folder of its own (one result without a sweep).
    results = load_sweep(settings, "{{ before }}", "{{ before }}.json")
    best = max(results, key=lambda result: result.get("score", -math.inf))  # a dry run has no score
    log.info("best of %d: %s", len(results), best)
    result = {"step": "{{ step }}", "best": best, "of": len(results), "run_id": settings.run_id}
{%- elif loop.first %}
    # RUN_ID and IMAGE_TAG say which run and which version made a result: tag your outputs with them.
    result = {"step": "{{ step }}", "run_id": settings.run_id, "image_tag": settings.image_tag}
{%- else %}
    # Steps of one run share files through the run folder (on NFS in the cluster).
    previous = load_json(settings, "{{ before }}.json")
    result = {"step": "{{ step }}", "after": previous["step"], "run_id": settings.run_id}
{%- endif %}
{%- if step in swept %}
    # A sweep's values come as environment variables: here LR, e.g. SWEEP='[{"LR": "0.1"}, {"LR": "0.01"}]'.
    learning_rate = float(os.environ.get("LR", "0.01"))
    result.update(learning_rate=learning_rate, sweep_index=settings.sweep_index)
    result["score"] = 1 / (1 + abs(math.log10(learning_rate) + 2))  # a stand-in (best at 0.01): your metric here
{%- endif %}
{%- if cookiecutter.mlflow_tracking_uri.strip() %}
    if settings.mlflow:  # inside this run's MLflow run: log params, metrics, models, files
        settings.mlflow.log_dict(result, "{{ step }}.json")
{%- endif %}
{%- if step in swept %}
    save_json(settings, "{{ step }}.json", result, folder=settings.out_dir)
{%- else %}
    save_json(settings, "{{ step }}.json", result)
{%- endif %}
{% endfor %}

STEPS = { {%- for step in steps %}"{{ step }}": {{ step }}{{ ", " if not loop.last }}{% endfor -%} }


# ---- Plumbing: settings, logging, exit codes. You rarely need to edit this. ----


def save_json(settings, name, data{{ ', folder=None' if swept }}):
    """Write data to <run dir>/<name>{{ ' (or <folder>/<name>)' if swept }}, or only log it with --dry-run."""
    path = {{ '(folder or settings.run_dir)' if swept else 'settings.run_dir' }} / name
    data = {**data, "written_at": datetime.now(timezone.utc).isoformat()}
    if settings.dry_run:
        log.info("dry run: would write %s: %s", path, data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    log.info("wrote %s", path)


def load_json(settings, name):
    """Read <run dir>/<name>, written by an earlier step of this run. With --dry-run, a missing
    file is only reported: a dry run of any step works before the earlier steps have run."""
    path = settings.run_dir / name
    if not path.exists():
        if settings.dry_run:
            log.info("dry run: %s is not there yet (an earlier step writes it)", path)
            return {"step": "(dry run)"}
        raise FileNotFoundError(f"{path} not found: did the previous step run with the same RUN_DIR?")
    return json.loads(path.read_text())


{% if swept -%}
def load_sweep(settings, step, name):
    """The <name> each pod of a sweep of <step> wrote in its folder, in their order; without a sweep
    the one <name> in the run folder."""
    folders = sorted((settings.run_dir / f"{step}-sweep").glob("[0-9]*"))
    if not folders:
        return [load_json(settings, name)]
    return [json.loads((folder / name).read_text()) for folder in folders]


{% endif -%}
@contextlib.contextmanager
def mlflow_run(settings):
    """The MLflow run of this Airflow run: every step, and every retry of a step, logs into the same one
    (found by its airflow_run_id tag), so a later step can load the model an earlier step logged.
    Without MLFLOW_TRACKING_URI (the DAG sets it), or with --dry-run, nothing is tracked."""
    if settings.dry_run or not os.environ.get("MLFLOW_TRACKING_URI"):
        yield None
        return
    import mlflow  # in requirements.txt; credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD (a Secret)

    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", log.name))
    tag = f"tags.airflow_run_id = '{settings.run_id}'"
    found = mlflow.search_runs(filter_string=tag, max_results=1, output_format="list")
    if found:
        run = mlflow.start_run(run_id=found[0].info.run_id)
    else:
        tags = {"airflow_run_id": settings.run_id, "image_tag": settings.image_tag}
        run = mlflow.start_run(run_name=settings.run_id, tags=tags)
    with run:
        yield mlflow


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
{%- if swept %}
    # One pod of a sweep: its number and folder (set by the DAG); else the run's folder.
    settings.sweep_index = int(os.environ.get("SWEEP_INDEX", "0"))
    settings.out_dir = Path(os.environ.get("SWEEP_DIR") or settings.run_dir)
{%- endif %}
    settings.mlflow = None  # set by main() while a step runs with MLflow
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
        with mlflow_run(settings) as tracking:
            settings.mlflow = tracking  # the mlflow module inside the run's MLflow run, or None
            STEPS[settings.step](settings)
    except Exception:
        log.exception("step %s failed", settings.step)
        return 1  # a non-zero exit marks the Airflow task as failed
    log.info("step %s done", settings.step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
