"""The pods a run would start, built by the KubernetesPodOperator itself, offline;
and the objects a serving DAG's deploy would apply, built by its operator.

The form values are checked as Airflow checks them when a person presses Trigger
(with messages a person reads, form.py); then each step's pod is built as the
operator would submit it, and its resources checked as the cluster would. A swept
step has a pod per item of its sweep field, "train[0]", "train[1]"...: the copies
Airflow's dynamic task mapping would make, from the DAG's own list of them.
"""

import copy
import functools
import inspect
import tempfile
from types import SimpleNamespace

from .form import as_form_sends_it, form_problems
from .rules import resource_problems

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


class ResourceError(ValueError):
    """A step's resources the cluster would refuse (a bad quantity, a request above its limit)."""


def form_schemas(dag):
    """{field: its JSON schema (with title)}: the Trigger form of the DAG."""
    return {name: dict(dag.params.get_param(name).schema) for name in dag.params}


def form_values(dag, conf):
    """The conf as the form would send it (4 -> "4", v0.2.0 -> 0.2.0); ConfError naming each bad field."""
    schemas = form_schemas(dag)
    if isinstance(conf, dict):
        conf = as_form_sends_it(conf, schemas)
    problems = form_problems(conf, schemas)
    if problems:
        raise ConfError("\n".join(problems))
    return conf


def validate_conf(dag, conf):
    """The params a run would get for this conf; ConfError saying what is wrong otherwise."""
    from airflow.exceptions import ParamValidationError

    conf = form_values(dag, conf)
    params = copy.deepcopy(dag.params)
    try:
        params.update(conf)
        return params.validate()
    except ParamValidationError as error:  # a rule form.py does not know: Airflow's first line says which field
        raise ConfError(str(error).splitlines()[0]) from None


def check_resources(pods):
    """ResourceError listing every step whose cpu or memory the cluster would refuse."""
    problems = []
    for step, pod in pods.items():
        resources = pod["spec"]["containers"][0].get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for kind in ("cpu", "memory"):
            if kind in requests and kind in limits:
                problems += resource_problems(step, kind, requests[kind], limits[kind])
    if problems:
        raise ResourceError("RESOURCES in the DAG cannot work:\n" + "\n".join(problems))


@functools.lru_cache(maxsize=None)
def dummy_kubeconfig():
    """A kubeconfig file of this process's own (processes rendering side by side must not share one)."""
    with tempfile.NamedTemporaryFile("w", prefix="confiance-job-kubeconfig-", suffix=".yaml", delete=False) as file:
        file.write(DUMMY_KUBECONFIG_TEXT)
    return file.name


def rendered(task, params, conf, run_id, map_index=-1):
    """A copy of the operator with its fields rendered for this run, as when its step starts; and the context."""
    task = copy.deepcopy(task)  # rendering changes the operator in place
    task.in_cluster, task.config_file = False, dummy_kubeconfig()  # outside the cluster, contact nothing
    ti = SimpleNamespace(dag_id=task.dag_id, task_id=task.task_id, map_index=map_index, try_number=1)
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
    return task, context


def render_pod(task, params, conf, run_id="manual__render", map_index=-1):
    """The pod manifest (a dict, as the Kubernetes API takes it) the operator would submit for this run."""
    from kubernetes.client import ApiClient

    task, context = rendered(task, params, conf, run_id, map_index)
    if "dry_run" in inspect.signature(task.build_pod_request_obj).parameters:
        pod = task.build_pod_request_obj(context, dry_run=True)
    else:
        pod = task.build_pod_request_obj(context)
    return ApiClient().sanitize_for_serialization(pod)


def is_swept(task):
    """A swept step: a mapped operator, one copy per item of its sweep field."""
    return hasattr(task, "expand_input")


def sweep_copies(task, params):
    """What each copy of a swept step gets, for these form values: the DAG's own task that lists them
    (<step>_sweep), called as Airflow calls it."""
    (lister,) = [argument.operator for argument in task.expand_input.value.values()]
    return lister.python_callable(*lister.op_args, params=params, **lister.op_kwargs)


def step_pods(task, params, conf, run_id):
    """{name: pod} of one step: its pod, or a swept step's pods, "train[0]", "train[1]"..."""
    if not is_swept(task):
        return {task.task_id: render_pod(task, params, conf, run_id)}
    pods = {}
    for index, copy_of_step in enumerate(sweep_copies(task, params)):
        step = task.unmap({"sweep_copy": copy_of_step})
        pods[f"{task.task_id}[{index}]"] = render_pod(step, params, conf, run_id, map_index=index)
    return pods


def is_step(task):
    """A task that starts pods: not the one listing a sweep's pods."""
    return is_swept(task) or hasattr(task, "build_pod_request_obj")


def render_pods(dag, conf, run_id="manual__render"):
    """{step: pod manifest} for every step of the DAG, in order (a swept step's copies as "step[index]");
    ConfError or ResourceError if a run could not start."""
    params = validate_conf(dag, conf)
    conf = form_values(dag, conf)
    pods = {}
    for task in filter(is_step, dag.tasks):
        pods.update(step_pods(task, params, conf, run_id))
    check_resources(pods)
    return pods


def pods_of_step(pods, step):
    """The pods of one step: its pod, or a swept step's copies."""
    return {name: pod for name, pod in pods.items() if name == step or name.startswith(f"{step}[")}


def step_of(name):
    """The step a pod belongs to: "train[2]" -> "train"."""
    return name.partition("[")[0]


def is_serving(dag):
    """A serving DAG: its deploy step applies Kubernetes objects instead of starting a pod."""
    return any(hasattr(task, "yaml_conf") for task in dag.tasks)


def render_serving(dag, conf, run_id="manual__render"):
    """[Deployment, Service, Ingress] a deploy would apply for this form; ConfError if the form refuses it."""
    import yaml

    params = validate_conf(dag, conf)
    task = next(task for task in dag.tasks if hasattr(task, "yaml_conf"))
    task, _ = rendered(task, params, form_values(dag, conf), run_id)
    return list(yaml.safe_load_all(task.yaml_conf))


def render_run(dag, conf, run_id="manual__render"):
    """What a run would make: the serving objects of a serving DAG, the pods of a job's DAG."""
    return render_serving(dag, conf, run_id) if is_serving(dag) else render_pods(dag, conf, run_id)
