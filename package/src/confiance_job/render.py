"""The pods a run would start, built by the KubernetesPodOperator itself, offline.

The form values are checked exactly as Airflow checks them when a person presses
Trigger; then each step's pod is built as the operator would submit it.
"""

import copy
import functools
import inspect
import tempfile
from types import SimpleNamespace

# An unreachable cluster: some provider versions read a kubeconfig while building the pod.
DUMMY_KUBECONFIG_TEXT = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


class ConfError(ValueError):
    """The conf would be rejected by the Trigger form."""


def validate_conf(dag, conf):
    """The params a run would get for this conf; ConfError with the reason Airflow would give otherwise."""
    from airflow.exceptions import ParamValidationError

    if not isinstance(conf, dict):
        raise ConfError("the conf must be a JSON object")
    unknown = sorted(set(conf) - set(dag.params))
    if unknown:  # Airflow accepts them silently: a typo would go unnoticed
        raise ConfError(f"unknown field(s) {', '.join(unknown)}; the form has: {', '.join(dag.params)}")
    params = copy.deepcopy(dag.params)
    try:
        params.update(conf)
        return params.validate()
    except ParamValidationError as error:
        raise ConfError(str(error)) from None


@functools.lru_cache(maxsize=None)
def dummy_kubeconfig():
    """A kubeconfig file of this process's own (processes rendering side by side must not share one)."""
    with tempfile.NamedTemporaryFile("w", prefix="confiance-job-kubeconfig-", suffix=".yaml", delete=False) as file:
        file.write(DUMMY_KUBECONFIG_TEXT)
    return file.name


def render_pod(task, params, conf, run_id="manual__render"):
    """The pod manifest (a dict, as the Kubernetes API takes it) the operator would submit for this run."""
    from kubernetes.client import ApiClient

    task = copy.deepcopy(task)  # rendering changes the operator in place
    task.in_cluster, task.config_file = False, dummy_kubeconfig()  # outside the cluster, contact nothing
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


def render_pods(dag, conf, run_id="manual__render"):
    """{step: pod manifest} for every step of the DAG, in order."""
    params = validate_conf(dag, conf)
    return {task.task_id: render_pod(task, params, conf, run_id) for task in dag.tasks}
