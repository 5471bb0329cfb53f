"""Run inside an Airflow venv: what a DAG's operators do with their pods, and the pods of some runs.

    python pod_limits.py DAG_FILE '["<run id>", ...]'
    ->  JSON {"settings": {step: {option: value}}, "warnings": [...], "pods": {run id: {step: pod}}}

Every pod is checked against the Kubernetes schema (strict); an invalid one stops it.
"""

import contextlib
import json
import sys
import warnings

import kubernetes_validate
from confiance_job.dags import load_dagbag
from confiance_job.render import render_pods
from confiance_job.rules import KUBERNETES_VERSION

OPTIONS = ("on_finish_action", "on_kill_action", "reattach_on_restart", "durable")


def as_text(value):
    return str(getattr(value, "value", value))  # an option's enum by its value: "delete_pod"


def main():
    dag_file, run_ids = sys.argv[1], json.loads(sys.argv[2])
    warnings.simplefilter("always")  # deprecations too, which Python hides by default
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep stdout for the JSON
        dagbag = load_dagbag(dag_file)  # it keeps the warnings the DAG file gave
        assert not dagbag.import_errors, dagbag.import_errors
        (dag,) = dagbag.dags.values()
        settings = {
            task.task_id: {o: as_text(getattr(task, o)) for o in OPTIONS if hasattr(task, o)} for task in dag.tasks
        }
        pods = {run_id: render_pods(dag, {}, run_id) for run_id in run_ids}
        for run in pods.values():
            for pod in run.values():
                kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    provider_warnings = [
        text for texts in dagbag.captured_warnings.values() for text in texts if any(o in text for o in OPTIONS)
    ]
    print(json.dumps({"settings": settings, "warnings": provider_warnings, "pods": pods}))


if __name__ == "__main__":
    main()
