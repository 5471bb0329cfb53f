"""{{ cookiecutter.project_name | docstring }}: serve a model that a training run logged to MLflow, behind a URL.

Trigger it with a model and the action "deploy": MLflow's scoring server runs in the
job's own image (a Kubernetes Deployment), behind a Service and an Ingress, at
https://{{ cookiecutter.serving_host }}/invocations. Deploy again to serve another model: the
new pods take over once they answer, then the old ones go. "stop" removes everything
deploy made. CI copies this file to the airflow-dags repository with the job's DAG.
"""

import time
from datetime import datetime, timezone

import yaml
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.providers.cncf.kubernetes.operators.resource import KubernetesCreateResourceOperator
from kubernetes.client import NetworkingV1Api
from kubernetes.utils import create_from_yaml

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

DAG_ID = "{{ cookiecutter.project_slug }}-serve"
IMAGE = "{{ cookiecutter.__image }}"
DEFAULT_IMAGE_TAG = "{{ cookiecutter.version }}"  # CI sets this to the version it just pushed

# Where the model answers, and the cluster's ingress class (ask the platform team).
HOST = "{{ cookiecutter.serving_host }}"
INGRESS_CLASS = "{{ cookiecutter.ingress_class }}"

# What one serving pod gets by default; the Trigger form may change them for one deploy.
REPLICAS = 1
CPU = "1"
MEMORY = "2Gi"

# The env and Secrets of the job's steps: the MLflow server, and its credentials.
ENV = {
{%- for name, value in (cookiecutter | static_env).items() %}
    "{{ name }}": {{ value | py_str }},
{%- endfor %}
}
SECRETS = {{ cookiecutter.secrets | items | tojson }}

# How long a deploy waits for every new pod to answer before it fails and says why.
READY_TIMEOUT_SECONDS = 600

# ---- Above: the settings you may edit. Below: how Airflow turns them into the Kubernetes objects. ----

NAMESPACE = "{{ cookiecutter.namespace }}"
PULL_SECRET = "{{ cookiecutter.image_pull_secret }}"
PORT = 8080
# Every object deploy makes carries these labels: stop deletes what has them, and nothing else.
LABELS = {"app.kubernetes.io/name": DAG_ID, "app.kubernetes.io/managed-by": "confiance-job"}
SELECTOR = ",".join(f"{key}={value}" for key, value in LABELS.items())
MODEL_URI_PATTERN = r"^(runs:/[^/\s]+/\S+|models:/[^/\s]+/\S+|latest:\S.*)$"
QUANTITY = r"{{ quantity_pattern }}"
IMAGE_TAG_PATTERN = r"{{ image_tag_pattern }}"

# The server's command: `latest:<experiment>` becomes the model of that experiment's last finished run,
# then MLflow serves the model with the image's own packages (--env-manager local). One line each:
# podman, which runs the same pod on a laptop, refuses multi-line strings in a manifest.
SERVE = (
    'uri="$MODEL_URI"; if [[ $uri == latest:* ]]; then uri=$(python -c "$1") || exit 1; fi; echo "serving $uri"; '
    'exec mlflow models serve --model-uri "$uri" --env-manager local --host 0.0.0.0 --port "$PORT"'
)
LATEST_MODEL = (
    "import mlflow, os, sys; experiment = os.environ['MODEL_URI'].removeprefix('latest:'); "
    "runs = mlflow.search_runs(experiment_names=[experiment], filter_string=\"attributes.status = 'FINISHED'\", "
    "order_by=['attributes.start_time DESC'], max_results=1, output_format='list'); "
    "print(f'runs:/{runs[0].info.run_id}/model') if runs else sys.exit(f'no finished run in {experiment!r}')"
)


def serving_objects(form, run_id):
    """The Deployment, Service and Ingress that serve the form's model at https://HOST/invocations."""
    metadata = {"name": DAG_ID, "namespace": NAMESPACE, "labels": LABELS}
    env = {**ENV, "MODEL_URI": form["model_uri"], "PORT": str(PORT)}
    resources = {"cpu": form.get("cpu") or CPU, "memory": form.get("memory") or MEMORY}
    container = {
        "name": "serve",
        "image": f"{IMAGE}:{form['image_tag']}",
        "command": ["bash", "-c", SERVE, "serve", LATEST_MODEL],
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": [{"name": name, "value": value} for name, value in env.items()],
        "envFrom": [{"secretRef": {"name": secret}} for secret in SECRETS],
        "resources": {"requests": resources, "limits": resources},
        # No request reaches a pod before its model is loaded (/ping); a pod that stops answering is restarted.
        "readinessProbe": {"httpGet": {"path": "/ping", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 60,
            "periodSeconds": 20,
        },
        # If the server dies (a wrong model URI), the end of its output is the reason deploy shows.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod = {
        # A new run id changes the pod template: every deploy rolls out, even of the same model URI.
        "metadata": {
            "labels": LABELS,
            "annotations": {"confiance-job/model-uri": form["model_uri"], "confiance-job/deployed-by": run_id},
        },
        "spec": {
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
            "containers": [container],
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": int(form.get("replicas") or REPLICAS),
            "selector": {"matchLabels": LABELS},
            # Old pods go only once new ones are ready: the URL answers through the whole rollout.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod,
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"selector": LABELS, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    backend = {"service": {"name": DAG_ID, "port": {"name": "http"}}}
    path = {"path": "/", "pathType": "Prefix", "backend": backend}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {"ingressClassName": INGRESS_CLASS, "rules": [{"host": HOST, "http": {"paths": [path]}}]},
    }
    return [deployment, service, ingress]


class ApplyServingOperator(KubernetesCreateResourceOperator):
    """The provider's create operator, applying instead (server-side apply): a first deploy creates the
    objects, the next ones update them in place, and no deploy fails with AlreadyExists."""

    def render_template_fields(self, context, jinja_env=None):
        super().render_template_fields(context, jinja_env)
        self.yaml_conf = yaml.safe_dump_all(serving_objects(context["params"], context["run_id"]))

    def _create_objects(self, objects):
        create_from_yaml(self.client, yaml_objects=objects, namespace=NAMESPACE, apply=True, force_conflicts=True)


def cluster():
    """The cluster, as KubernetesPodOperator reaches it (Airflow's kubernetes_default connection, or in-cluster)."""
    return KubernetesHook(conn_id="kubernetes_default")


def rollout_done(deployment):
    """True once every pod runs the newest template and answers, and the old pods are gone."""
    status, wanted = deployment.status, deployment.spec.replicas
    return (
        (status.observed_generation or 0) >= deployment.metadata.generation
        and (status.updated_replicas or 0) == wanted
        and (status.replicas or 0) == wanted
        and (status.available_replicas or 0) >= wanted
    )


def why_not_ready(hook):
    """Why the serving pods do not answer, from their state: image, crash (with the server's last words), node."""
    reasons = []
    for pod in hook.core_v1_client.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items:
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                reasons.append(f"no node for the pod ({condition.reason}): {condition.message}")
        for container in pod.status.container_statuses or []:
            waiting = container.state.waiting if container.state else None
            ended = container.last_state.terminated if container.last_state else None
            if waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
                reasons.append(f"image not found ({waiting.reason}): {waiting.message or container.image}")
            elif ended and ended.exit_code:
                last_words = (ended.message or "").strip().splitlines()[-3:]
                reasons.append(f"the server exits (code {ended.exit_code}): " + " / ".join(last_words))
            elif not container.ready:
                reasons.append(f"the server does not answer /ping on port {PORT} yet")
    return "; ".join(dict.fromkeys(reasons)) or "no serving pod was created (see the Deployment's events)"


def wait_until_served(hook=None, timeout=READY_TIMEOUT_SECONDS, every=5):
    """Return when the rollout is complete; fail with the pods' reason if it is not within the timeout."""
    hook, deadline = hook or cluster(), time.monotonic() + timeout
    while True:
        if rollout_done(hook.get_deployment_status(DAG_ID, NAMESPACE)):
            print(f"Serving at https://{HOST}/invocations")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the model is not served after {timeout} s: {why_not_ready(hook)}")
        time.sleep(every)


def delete_serving(hook=None):
    """Delete the Ingress, Service and Deployment that carry LABELS; returns what was deleted."""
    hook = hook or cluster()
    apps, core, networking = hook.apps_v1_client, hook.core_v1_client, NetworkingV1Api(hook.api_client)
    deleted = []
    for kind, listed, delete in (
        ("Ingress", networking.list_namespaced_ingress, networking.delete_namespaced_ingress),
        ("Service", core.list_namespaced_service, core.delete_namespaced_service),
        ("Deployment", apps.list_namespaced_deployment, apps.delete_namespaced_deployment),
    ):
        for item in listed(NAMESPACE, label_selector=SELECTOR).items:
            delete(item.metadata.name, NAMESPACE)
            deleted.append(f"{kind} {item.metadata.name}")
    print("Deleted: " + (", ".join(deleted) or f"nothing: no object with the labels {SELECTOR}"))
    return deleted


# The fields of the Trigger form.
PARAMS = {
    "model_uri": Param(
        "latest:{{ cookiecutter.project_slug }}",
        type="string",
        pattern=MODEL_URI_PATTERN,
        title="Model",
        description="The MLflow model to serve: runs:/<run id>/model (the model a training run logged), "
        "models:/<name>/<version> (a registered model), or latest:<experiment> (the model of that experiment's "
        "last finished run).",
    ),
    "action": Param(
        "deploy",
        enum=["deploy", "stop"],
        title="Action",
        description="deploy: serve this model (it replaces the one served). stop: remove the server.",
    ),
    "image_tag": Param(
        DEFAULT_IMAGE_TAG,
        type="string",
        pattern=IMAGE_TAG_PATTERN,
        title="Image tag",
        description=f"Version of {IMAGE} the server runs in: its packages load the model, e.g. 0.2.0.",
    ),
    "replicas": Param(
        REPLICAS,
        type="integer",
        minimum=1,
        maximum=10,
        title="Replicas",
        description="How many serving pods share the requests.",
    ),
    "cpu": Param(
        None,
        type=["null", "string"],
        pattern=QUANTITY,
        title="CPU",
        description=f"CPUs per serving pod, e.g. 2 or 500m. Empty: {CPU}.",
    ),
    "memory": Param(
        None,
        type=["null", "string"],
        pattern=QUANTITY,
        title="Memory",
        description=f"Memory per serving pod, e.g. 4Gi. Empty: {MEMORY}.",
    ),
}

with DAG(
    dag_id=DAG_ID,
    description=f"Serve a model of {{ cookiecutter.project_slug }} at https://{HOST}/invocations",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,  # one deploy or stop at a time
    params=PARAMS,
    tags=["confiance-job", "{{ cookiecutter.project_slug }}"],
    default_args={
        "owner": {{ cookiecutter.author_name | py_str }},
        "retries": 0,
    },
) as dag:

    @task.branch
    def choose(params=None):
        return "deploy" if params["action"] == "deploy" else "stop"

    deploy = ApplyServingOperator(task_id="deploy", yaml_conf="# made from the form when the step starts")

    @task
    def wait_until_ready():
        wait_until_served()

    @task
    def stop():
        delete_serving()

    choose() >> [deploy, stop()]
    deploy >> wait_until_ready()
