"""Print the Kubernetes pods the DAG would start for a Trigger form, without a cluster.

    make render CONF='{"image_tag": "0.2.0", "cpu": "4"}'
    python scripts/render_pod.py '{"image_tag": "0.2.0"}' --step {{ cookiecutter.steps.split(',')[0].strip() }}

The form values are checked exactly as Airflow checks them when you press
Trigger; then each step's pod is built by the KubernetesPodOperator itself.
Needs the dev requirements (make dev).
"""

import argparse
import contextlib
import copy
import inspect
import json
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "dags" / "{{ cookiecutter.project_slug }}.py"

# An unreachable cluster: some provider versions read a kubeconfig while building the pod.
DUMMY_KUBECONFIG = Path(tempfile.gettempdir()) / "render-pod-kubeconfig.yaml"
DUMMY_KUBECONFIG_TEXT = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


class ConfError(ValueError):
    """The conf would be rejected by the Trigger form."""


def prepare_environment():
    """Point Airflow at throw-away settings, before it is imported."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="render-pod-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("AIRFLOW_CONN_KUBERNETES_DEFAULT", '{"conn_type": "kubernetes"}')


def load_dagbag(dag_file=DAG_FILE):
    """Parse the DAG file as Airflow's scheduler does."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.3+
    except ImportError:
        from airflow.models.dagbag import DagBag
    options = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    return DagBag(dag_folder=str(dag_file), **options)


def load_dag(dag_file=DAG_FILE):
    dagbag = load_dagbag(dag_file)
    if dagbag.import_errors:
        raise SystemExit(f"The DAG does not import:\n{''.join(dagbag.import_errors.values())}")
    (dag,) = dagbag.dags.values()
    return dag


def validate_conf(dag, conf):
    """Return the params a run would get for this conf, or raise ConfError with the reason."""
    from airflow.exceptions import ParamValidationError

    if not isinstance(conf, dict):
        raise ConfError("the conf must be a JSON object")
    unknown = sorted(set(conf) - set(dag.params))
    if unknown:
        raise ConfError(f"unknown field(s) {', '.join(unknown)}; the form has: {', '.join(dag.params)}")
    params = copy.deepcopy(dag.params)
    try:
        params.update(conf)
        return params.validate()
    except ParamValidationError as error:
        raise ConfError(str(error)) from None


def render_pod(task, params, conf, run_id="manual__render"):
    """Build the pod manifest (a dict) the operator would submit for this run."""
    from kubernetes.client import ApiClient

    task = copy.deepcopy(task)  # rendering changes the operator in place
    # Outside the cluster: read a dummy kubeconfig, contact nothing.
    DUMMY_KUBECONFIG.write_text(DUMMY_KUBECONFIG_TEXT)
    task.in_cluster, task.config_file = False, str(DUMMY_KUBECONFIG)
    ti = SimpleNamespace(dag_id=task.dag_id, task_id=task.task_id, map_index=-1, try_number=1)
    context = {
        "params": params,
        "dag": task.dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "run_id": run_id,
        "dag_run": SimpleNamespace(conf=conf, run_id=run_id),
        "conf": conf,
    }
    task.render_template_fields(context)
    if "dry_run" in inspect.signature(task.build_pod_request_obj).parameters:
        pod = task.build_pod_request_obj(context, dry_run=True)
    else:
        pod = task.build_pod_request_obj(context)
    return ApiClient().sanitize_for_serialization(pod)


def render_pods(conf, dag_file=DAG_FILE):
    """{step: pod manifest} for every step of the DAG, in order."""
    dag = load_dag(dag_file)
    params = validate_conf(dag, conf)
    return {task.task_id: render_pod(task, params, conf) for task in dag.tasks}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conf", nargs="?", default="{}", help="the form values as JSON (default: {})")
    parser.add_argument("--step", help="only this step")
    args = parser.parse_args(argv)
    prepare_environment()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Airflow's own log lines are not part of the manifest
            pods = render_pods(json.loads(args.conf))
    except json.JSONDecodeError as error:
        sys.exit(f"conf is not valid JSON: {error}")
    except ConfError as error:
        sys.exit(f"Airflow would reject this conf: {error}")
    if args.step and args.step not in pods:
        sys.exit(f"no step {args.step!r}; the steps are: {', '.join(pods)}")
    if args.step:
        print(json.dumps(pods[args.step], indent=2))
    else:  # a Kubernetes List, as kubectl prints several objects
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(pods.values())}, indent=2))


if __name__ == "__main__":
    main()
