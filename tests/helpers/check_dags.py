"""Run inside an Airflow venv: load each baked repo's DAG and render its pods.

    python check_dags.py REPO [REPO ...]   ->  JSON {repo: facts} on stdout

Uses the platform's package, as `make render` and the repos' own tests do.
"""

import contextlib
import json
import sys
import time
import warnings
from pathlib import Path

import kubernetes_validate
from confiance_job.dags import load_dagbag
from confiance_job.render import render_pods
from confiance_job.rules import KUBERNETES_VERSION

FULL_CONF = {"image_tag": "1.2.3-rc.1", "env": {"EPOCHS": "3"}, "cpu": "500m", "memory": "3Gi"}


def facts_of(repo):
    dag_file = Path(repo, "dags", f"{Path(repo).name}.py")  # the job's DAG (not its serving DAG)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dagbag = load_dagbag(dag_file)
    facts = {
        "load_seconds": time.perf_counter() - started,
        "import_errors": {str(k): str(v) for k, v in dagbag.import_errors.items()},
        "dag_file_warnings": [str(w.message) for w in caught if w.filename == str(dag_file)],
    }
    if dagbag.import_errors:
        return facts
    (dag,) = dagbag.dags.values()
    facts.update(
        dag_id=dag.dag_id,
        schedule=str(dag.schedule if hasattr(dag, "schedule") else dag.schedule_interval),  # Airflow 3 / 2
        tags=sorted(dag.tags),
        tasks=[task.task_id for task in dag.tasks],
        upstream={task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks},
        pods={},
        invalid_pods=[],
    )
    for name, conf in {"defaults": {}, "full": FULL_CONF}.items():
        pods = render_pods(dag, conf)
        facts["pods"][name] = pods
        for step, pod in pods.items():
            try:
                kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
            except Exception as error:  # noqa: BLE001 - reported, then asserted by the test
                facts["invalid_pods"].append(f"{name}/{step}: {error}")
    return facts


def main():
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep stdout for the JSON
        results = {repo: facts_of(repo) for repo in sys.argv[1:]}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
