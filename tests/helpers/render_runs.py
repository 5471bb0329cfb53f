"""Run inside an Airflow venv: the pods a DAG would start for several runs.

    python render_runs.py REPO DAG_FILE '{"<run id>": {<conf>}, ...}'  ->  JSON {run id: {step: pod}}

Every pod is checked against the Kubernetes schema (strict); an invalid one stops it.

Uses the repo's own scripts/render_pod.py, as `make render` does; DAG_FILE may
be a copy (the file CI synced to the dags repository).
"""

import contextlib
import json
import sys

import kubernetes_validate

KUBERNETES_VERSION = "1.33.0"


def main():
    repo, dag_file, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sys.path.insert(0, f"{repo}/scripts")
    import render_pod

    render_pod.prepare_environment()
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep stdout for the JSON
        dag = render_pod.load_dag(dag_file)
        pods = {}
        for run_id, conf in runs.items():
            params = render_pod.validate_conf(dag, conf)
            pods[run_id] = {task.task_id: render_pod.render_pod(task, params, conf, run_id) for task in dag.tasks}
            for pod in pods[run_id].values():
                kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    print(json.dumps(pods))


if __name__ == "__main__":
    main()
