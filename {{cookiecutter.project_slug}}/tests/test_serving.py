"""Tests of the serving DAG: it imports in Airflow, and the objects a deploy applies are valid.

The Deployment, Service and Ingress are built by the DAG's own deploy operator (through the
platform's `confiance-job` package, as `make render-serve` does) and checked against the
Kubernetes API schema of the cluster, offline. A failure here names what to fix in
dags/{{ cookiecutter.project_slug }}-serve.py.
"""

from pathlib import Path

import pytest

pytest.importorskip("airflow", reason="Airflow is not installed: run `make dev`")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from confiance_job.dags import load_dag  # noqa: E402  (after the skips above)
from confiance_job.render import ConfError, render_serving  # noqa: E402
from confiance_job.rules import KUBERNETES_VERSION  # noqa: E402

SERVING_DAG = Path(__file__).resolve().parent.parent / "dags" / "{{ cookiecutter.project_slug }}-serve.py"


@pytest.fixture(scope="module")
def dag():
    return load_dag(SERVING_DAG, "{{ cookiecutter.project_slug }}-serve")


@pytest.mark.parametrize(
    "conf",
    [
        {},  # the last finished run's model of the job's experiment
        {"model_uri": "runs:/0123456789abcdef0123456789abcdef/model", "replicas": 2, "cpu": "2", "memory": "4Gi"},
        {"model_uri": "models:/{{ cookiecutter.project_slug }}/3", "image_tag": "v0.2.0"},
    ],
    ids=["defaults", "a-run", "a-registered-model"],
)
def test_deploy_applies_a_valid_deployment_service_and_ingress(dag, conf):
    objects = render_serving(dag, conf)
    assert [obj["kind"] for obj in objects] == ["Deployment", "Service", "Ingress"]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    container = objects[0]["spec"]["template"]["spec"]["containers"][0]
    env = {var["name"]: var["value"] for var in container["env"]}
    assert env["MODEL_URI"] == conf.get("model_uri", dag.params["model_uri"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"


def test_every_object_carries_the_labels_stop_deletes_by(dag):
    for obj in render_serving(dag, {}):
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "{{ cookiecutter.project_slug }}-serve"


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"model_uri": "s3://bucket/model"}, "model_uri"),
        ({"action": "restart"}, "action"),
        ({"replicas": 0}, "replicas"),
    ],
)
def test_a_form_the_trigger_would_refuse_is_refused_here(dag, conf, message):
    with pytest.raises(ConfError, match=message):
        render_serving(dag, conf)
