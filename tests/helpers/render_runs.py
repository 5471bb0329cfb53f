"""Run inside an Airflow venv: the pods a DAG would start for several runs.

    python render_runs.py DAG_FILE '{"<run id>": {<conf>}, ...}'  ->  JSON {run id: {step: pod}}
    python render_runs.py DAG_FILE '{...}' --refused   ->  JSON {run id: why the form refuses it}

Every pod is checked against the Kubernetes schema (strict); an invalid one stops it, and so
does, with --refused, a conf the form accepts.

Uses the platform's package, as `make render` does; DAG_FILE may be a copy
(the file CI synced to the dags repository).
"""

import contextlib
import json
import sys

import kubernetes_validate
from confiance_job.dags import load_dag
from confiance_job.render import ConfError, render_pods
from confiance_job.rules import KUBERNETES_VERSION


def main():
    dag_file, runs, refused = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:] == ["--refused"]
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; keep stdout for the JSON
        dag = load_dag(dag_file)
        pods = {}
        for run_id, conf in runs.items():
            if refused:
                try:
                    render_pods(dag, conf, run_id)
                except ConfError as error:
                    pods[run_id] = str(error)
                    continue
                raise SystemExit(f"{run_id}: the form accepts {json.dumps(conf)}")
            pods[run_id] = render_pods(dag, conf, run_id)
            for pod in pods[run_id].values():
                kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    print(json.dumps(pods))


if __name__ == "__main__":
    main()
