"""Run inside an Airflow venv: load each baked repo's DAG and render its pods.

    python check_dags.py REPO [REPO ...]   ->  JSON {repo: facts} on stdout

Uses each repo's own scripts/render_pod.py, so what is checked is what users run.
"""

import contextlib
import importlib.util
import json
import sys
import time
import warnings

FULL_CONF = {"image_tag": "1.2.3-rc.1", "env": {"EPOCHS": "3"}, "cpu": "500m", "memory": "3Gi"}


def load_render_pod(repo, index):
    spec = importlib.util.spec_from_file_location(f"render_pod_{index}", f"{repo}/scripts/render_pod.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def facts_of(repo, index):
    import kubernetes_validate

    render_pod = load_render_pod(repo, index)
    render_pod.prepare_environment()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dagbag = render_pod.load_dagbag(render_pod.DAG_FILE)
    facts = {
        "load_seconds": time.perf_counter() - started,
        "import_errors": {str(k): str(v) for k, v in dagbag.import_errors.items()},
        "dag_file_warnings": [str(w.message) for w in caught if w.filename == str(render_pod.DAG_FILE)],
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
        params = render_pod.validate_conf(dag, conf)
        pods = {task.task_id: render_pod.render_pod(task, params, conf) for task in dag.tasks}
        facts["pods"][name] = pods
        for step, pod in pods.items():
            try:
                kubernetes_validate.validate(pod, "1.33.0", strict=True)
            except Exception as error:  # noqa: BLE001 - reported, then asserted by the test
                facts["invalid_pods"].append(f"{name}/{step}: {error}")
    return facts


def main():
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep stdout for the JSON
        results = {repo: facts_of(repo, index) for index, repo in enumerate(sys.argv[1:])}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
