"""Tests of the DAG: it imports in Airflow, and the pods it starts are valid.

The pods are built by the KubernetesPodOperator itself (scripts/render_pod.py)
and checked against the Kubernetes API schema, offline.
"""

import warnings
from itertools import pairwise

import pytest

pytest.importorskip("airflow", reason="Airflow is not installed: run `make dev`")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

import render_pod  # noqa: E402  (after the skips above)

KUBERNETES_VERSION = "1.33.0"  # the cluster's version

render_pod.prepare_environment()


@pytest.fixture(scope="module")
def dag():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dagbag = render_pod.load_dagbag()
    assert dagbag.import_errors == {}
    ours = [w for w in caught if w.filename == str(render_pod.DAG_FILE)]
    assert ours == [], [str(w.message) for w in ours]
    return dagbag.dags["{{ cookiecutter.project_slug }}"]


def render(dag, conf):
    params = render_pod.validate_conf(dag, conf)
    return {task.task_id: render_pod.render_pod(task, params, conf) for task in dag.tasks}


def test_the_steps_run_one_after_the_other(dag):
    steps = list(dag.task_dict)
    assert steps == {{ cookiecutter.steps.split(',') | map('trim') | list | tojson }}
    for before, after in pairwise(steps):
        assert dag.task_dict[after].upstream_task_ids == {before}


@pytest.mark.parametrize(
    "conf",
    [
        {},
        {"image_tag": "0.2.0"},
        {"image_tag": "1.0.0-rc.1", "env": {"EPOCHS": "3"}, "cpu": "500m", "memory": "16Gi"},
        {"env": None, "cpu": None, "memory": None},  # what an empty form sends
    ],
    ids=["defaults", "tag", "everything", "empty-form"],
)
def test_every_pod_is_a_valid_kubernetes_pod(dag, conf):
    for pod in render(dag, conf).values():
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        assert pod["spec"]["containers"][0]["image"].endswith(":" + conf.get("image_tag", dag.params["image_tag"]))


def test_the_form_sets_command_env_and_resources(dag):
    step = dag.tasks[0].task_id
    command_field = "command" if len(dag.tasks) == 1 else f"{step}_command"
    conf = {command_field: f"python main.py {step} --dry-run", "env": {"EPOCHS": "3"}, "cpu": "4"}
    container = render(dag, conf)[step]["spec"]["containers"][0]
    assert container["args"] == [conf[command_field]]
    assert {"name": "EPOCHS", "value": "3"} in container["env"]
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "4"


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"image_tag": "latest tag"}, "does not match"),
        ({"image_tag": ""}, "does not match"),
        ({"env": {"EPOCHS": 3}}, "is not of type 'string'"),
        ({"env": {"1BAD": "x"}}, "does not match"),
        ({"env": ["EPOCHS=3"]}, "is not of type"),
        ({"cpu": "two"}, "does not match"),
        ({"memory": "8 GB"}, "does not match"),
        ({"imagetag": "0.2.0"}, "unknown field"),
    ],
    ids=["tag-with-space", "empty-tag", "env-not-string", "env-bad-name", "env-not-object", "cpu", "memory", "typo"],
)
def test_invalid_form_values_are_rejected(dag, conf, message):
    with pytest.raises(render_pod.ConfError, match=message):
        render_pod.validate_conf(dag, conf)
