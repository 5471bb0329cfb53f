"""Tests of the DAG: it imports in Airflow, and the pods it starts are valid.

The pods are built by the KubernetesPodOperator itself (through the platform's
`confiance-job` package, as `make render` does) and checked against the
Kubernetes API schema of the cluster, offline.
"""

import importlib.util
import warnings
from itertools import pairwise
from pathlib import Path

import pytest

pytest.importorskip("airflow", reason="Airflow is not installed: run `make dev`")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from confiance_job.dags import load_dagbag  # noqa: E402  (after the skips above)
from confiance_job.render import ConfError, render_pods, validate_conf  # noqa: E402
from confiance_job.rules import KUBERNETES_VERSION  # noqa: E402

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "{{ cookiecutter.project_slug }}.py"


def dag_module():
    """The DAG file as a module, to read its tables (RESOURCES, SECRETS)."""
    spec = importlib.util.spec_from_file_location("dag_under_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dag():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dagbag = load_dagbag(DAG_FILE)
    assert dagbag.import_errors == {}
    ours = [w for w in caught if w.filename == str(DAG_FILE)]
    assert ours == [], [str(w.message) for w in ours]
    return dagbag.dags["{{ cookiecutter.project_slug }}"]


def env_of(pod):
    return {var["name"]: var["value"] for var in pod["spec"]["containers"][0]["env"]}


def test_the_steps_run_one_after_the_other(dag):
    steps = list(dag.task_dict)
    assert steps == {{ cookiecutter.steps | items | tojson }}
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
    for pod in render_pods(dag, conf).values():
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        assert pod["spec"]["containers"][0]["image"].endswith(":" + conf.get("image_tag", dag.params["image_tag"]))


def test_the_form_sets_command_env_and_resources(dag):
    step = dag.tasks[0].task_id
    command_field = dag_module().command_field(step)  # the DAG's own rule for the form's command fields
    conf = {command_field: f"python main.py {step} --dry-run", "env": {"EPOCHS": "3"}, "cpu": "4"}
    container = render_pods(dag, conf)[step]["spec"]["containers"][0]
    assert container["args"] == [conf[command_field]]
    assert {"name": "EPOCHS", "value": "3"} in container["env"]
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "4"


def test_each_step_gets_the_resources_of_its_line_in_the_table(dag):
    table = dag_module().RESOURCES
    for step, pod in render_pods(dag, {}).items():
        spec = pod["spec"]
        resources = spec["containers"][0]["resources"]
        assert [resources["requests"]["cpu"], resources["limits"]["cpu"]] == table[step]["cpu"]
        assert [resources["requests"]["memory"], resources["limits"]["memory"]] == table[step]["memory"]
        gpus = table[step]["gpus"]
        assert resources["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
        assert (bool(spec.get("affinity")), bool(spec.get("tolerations"))) == (bool(gpus), bool(gpus))
        shm = [mount for mount in spec["containers"][0].get("volumeMounts", []) if mount["mountPath"] == "/dev/shm"]
        assert len(shm) == (1 if gpus else 0)


def test_every_step_gets_the_secrets_as_env_never_their_values(dag):
    secrets = dag_module().SECRETS
    for pod in render_pods(dag, {}).values():
        env_from = pod["spec"]["containers"][0].get("envFrom", [])
        assert env_from == [{"secretRef": {"name": name}} for name in secrets]


def test_each_run_writes_to_a_folder_of_its_own(dag):
    first, second = render_pods(dag, {}, "manual__2026-01-01T00:00:00+00:00"), render_pods(dag, {}, "manual__second")
    for step in first:
        first_env, second_env = env_of(first[step]), env_of(second[step])
        assert first_env["RUN_DIR"] == first_env["DATA_DIR"] + "/runs/manual__2026-01-01T00_00_00_00_00"
        assert first_env["RUN_DIR"] != second_env["RUN_DIR"]
        assert (first_env["RUN_ID"], first_env["IMAGE_TAG"], first_env["TRY_NUMBER"]) == (
            "manual__2026-01-01T00:00:00+00:00",
            dag.params["image_tag"],
            "1",
        )


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
    with pytest.raises(ConfError, match=message):
        validate_conf(dag, conf)
