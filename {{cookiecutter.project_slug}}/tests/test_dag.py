"""Tests of the DAG: it imports in Airflow, runs main.py's steps, and the pods it starts are valid.

The pods are built by the KubernetesPodOperator itself (through the platform's
`confiance-job` package, as `make render` does) and checked against the
Kubernetes API schema of the cluster, offline. A failure here names what to fix
in dags/{{ cookiecutter.project_slug }}.py (its STEPS and RESOURCES tables) or in main.py.
"""

import importlib.util
import warnings
from itertools import pairwise
from pathlib import Path

import pytest

pytest.importorskip("airflow", reason="Airflow is not installed: run `make dev`")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from confiance_job.dags import load_dagbag  # noqa: E402  (after the skips above)
from confiance_job.render import ConfError, is_step, render_pods, step_of, validate_conf  # noqa: E402
from confiance_job.rules import KUBERNETES_VERSION  # noqa: E402

import main  # noqa: E402

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
    assert dagbag.import_errors == {}, "the DAG does not import:\n" + "\n".join(dagbag.import_errors.values())
    ours = [w for w in caught if w.filename == str(DAG_FILE)]
    assert ours == [], [str(w.message) for w in ours]
    return dagbag.dags["{{ cookiecutter.project_slug }}"]


def steps_of(dag):
    """The DAG's steps, in order: the tasks that start pods{{ ' (not the ones listing a sweep\'s pods)' if cookiecutter.sweep_steps.strip() }}."""
    return [task.task_id for task in dag.tasks if is_step(task)]


def env_of(pod):
    return {var["name"]: var["value"] for var in pod["spec"]["containers"][0]["env"]}


def what_to_fix(dag_steps, main_steps):
    """What to change so that the DAG and main.py have the same steps (either side may be the new one)."""
    fixes = [
        f"add `def {step}(settings)` to main.py and to its STEPS, or remove {step!r} from the DAG's STEPS and RESOURCES"
        for step in dag_steps
        if step not in main_steps
    ]
    fixes += [
        f"add {step!r} to STEPS and RESOURCES in the DAG, or remove it from main.py's STEPS"
        for step in main_steps
        if step not in dag_steps
    ]
    return "; ".join(fixes) or "list the steps in the same order"


def test_the_dag_runs_the_steps_of_main_py_in_order(dag):
    dag_steps, main_steps = steps_of(dag), list(main.STEPS)
    assert dag_steps == main_steps, (
        f"the DAG runs {dag_steps}, main.py has {main_steps}: {what_to_fix(dag_steps, main_steps)}"
    )
    for before, after in pairwise(dag_steps):
        assert set(dag.task_dict[after].upstream_task_ids) & set(dag_steps) == {before}


@pytest.mark.parametrize(
    "conf",
    [
        {},
        {"image_tag": "0.2.0"},
        {"image_tag": "1.0.0-rc.1", "env": {"EPOCHS": "3"}, "cpu": "500m", "memory": "16Gi"},
        {"env": None, "cpu": None, "memory": None},  # what an empty form sends
        {"image_tag": "v0.2.0", "cpu": 4},  # the git tag and a number, as a person types them: image 0.2.0, cpu "4"
    ],
    ids=["defaults", "tag", "everything", "empty-form", "as-typed"],
)
def test_every_pod_is_a_valid_kubernetes_pod(dag, conf):
    # render_pods also checks each step's RESOURCES as the cluster would (quantities, request <= limit).
    tag = str(conf.get("image_tag", dag.params["image_tag"])).removeprefix("v")
    for pod in render_pods(dag, conf).values():
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        assert pod["spec"]["containers"][0]["image"].endswith(":" + tag)


def test_the_form_sets_command_env_and_resources(dag):
    step = steps_of(dag)[0]
    command_field = dag_module().command_field(step)  # the DAG's own rule for the form's command fields
    conf = {command_field: f"python main.py {step} --dry-run", "env": {"EPOCHS": "3"}, "cpu": "4"}
    container = next(iter(render_pods(dag, conf).values()))["spec"]["containers"][0]
    assert container["args"] == [conf[command_field]]
    assert {"name": "EPOCHS", "value": "3"} in container["env"]
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "4"


def test_each_step_gets_the_resources_of_its_line_in_the_table(dag):
    module = dag_module()
    for name, pod in render_pods(dag, {}).items():
        step, spec = step_of(name), pod["spec"]
        resources = spec["containers"][0]["resources"]
        for kind in ("cpu", "memory"):  # [reserved, maximum], or one value for both
            assert (resources["requests"][kind], resources["limits"][kind]) == module.reserved_and_max(step, kind)
        gpus = module.RESOURCES[step]["gpus"]
        assert resources["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
        assert (bool(spec.get("affinity")), bool(spec.get("tolerations"))) == (bool(gpus), bool(gpus))
        shm = [mount for mount in spec["containers"][0].get("volumeMounts", []) if mount["mountPath"] == "/dev/shm"]
        assert len(shm) == (1 if gpus else 0)


def test_every_step_gets_the_secrets_as_env_never_their_values(dag):
    secrets = dag_module().SECRETS
    for pod in render_pods(dag, {}).values():
        env_from = pod["spec"]["containers"][0].get("envFrom", [])
        assert env_from == [{"secretRef": {"name": name}} for name in secrets]


def test_each_run_writes_to_a_folder_of_its_own_whatever_its_id(dag):
    # Valid Airflow run ids that a lossy mapping would merge: each must get its own folder.
    run_ids = ["manual__2026-01-01T00:00:00+00:00", "manual__x~y:z+1", "manual__x:y+z~1", "manual__x_y_z_1", ".."]
    folders = {}
    for run_id in run_ids:
        env = env_of(next(iter(render_pods(dag, {}, run_id).values())))
        assert (env["RUN_ID"], env["IMAGE_TAG"], env["TRY_NUMBER"]) == (run_id, dag.params["image_tag"], "1")
        runs, _, folders[run_id] = env["RUN_DIR"].rpartition("/")
        assert runs == env["DATA_DIR"] + "/runs" and folders[run_id] not in (".", "..")
    assert len(set(folders.values())) == len(run_ids), folders
    assert folders["manual__2026-01-01T00:00:00+00:00"] == "manual__2026-01-01T00%3A00%3A00%2B00%3A00"  # readable


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"image_tag": "latest tag"}, 'image_tag: "latest tag" is not an image tag'),
        ({"image_tag": ""}, 'image_tag: "" is not an image tag'),
        ({"env": {"EPOCHS": 3}}, 'env: every value must be text: "EPOCHS": 3'),
        ({"env": {"1BAD": "x"}}, 'env: "1BAD": not a variable name'),
        ({"env": ["EPOCHS=3"]}, "env: must be empty or a JSON object"),
        ({"cpu": "two"}, 'cpu: "two" is not a Kubernetes quantity. For example: "4" or "500m"'),
        ({"memory": "8 GB"}, 'memory: "8 GB" is not a Kubernetes quantity. For example: "16Gi" or "512Mi"'),
        ({"imagetag": "0.2.0"}, "the form has no field imagetag"),
    ],
    ids=["tag-with-space", "empty-tag", "env-not-string", "env-bad-name", "env-not-object", "cpu", "memory", "typo"],
)
def test_invalid_form_values_are_refused_with_the_field_and_an_example(dag, conf, message):
    with pytest.raises(ConfError) as refused:
        validate_conf(dag, conf)
    assert str(refused.value).startswith(message)
{%- if cookiecutter.sweep_steps.strip() %}


def test_a_sweep_runs_one_pod_per_item_each_with_its_values_and_folder(dag):
    module = dag_module()
    step = module.SWEEP_STEPS[0]
    items = [{"LR": "0.1"}, {"LR": "0.01"}, {"LR": "0.001", "DEPTH": "3"}]
    pods = render_pods(dag, {module.sweep_field(step): items})
    assert [step_of(name) for name in pods].count(step) == 3  # the other steps run once
    copies = [pod for name, pod in pods.items() if step_of(name) == step]
    for index, (pod, values) in enumerate(zip(copies, items, strict=True)):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        env = env_of(pod)
        assert {name: env[name] for name in values} == values
        assert (env["SWEEP_INDEX"], env["SWEEP_SIZE"]) == (str(index), "3")
        assert env["SWEEP_DIR"].startswith(env["RUN_DIR"] + "/")  # in the run folder, where the next step looks
    assert len({env_of(pod)["SWEEP_DIR"] for pod in copies}) == 3


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"LR": "0.1"}, "must be empty or a list"),
        ([], "an empty list runs nothing"),
        ([{"LR": 0.1}], 'item 1 {"LR": 0.1}: every value must be text'),
        ([{"LR": "0.1"}, {"1LR": "x"}], 'item 2 {"1LR": "x"}: "1LR": not a variable name'),
        ([{"RUN_DIR": "/tmp"}], '"RUN_DIR": set by the run'),
        ([{"LR": "0.1"}] * 1025, "1025 items, more than 1024"),
    ],
    ids=["not-a-list", "empty", "number", "bad-name", "run-variable", "too-many"],
)
def test_a_bad_sweep_is_refused_before_any_pod_starts(dag, sweep, message):
    module = dag_module()
    field = module.sweep_field(module.SWEEP_STEPS[0])
    with pytest.raises(ConfError) as refused:
        validate_conf(dag, {field: sweep})
    assert str(refused.value).startswith(f"{field}: ") and message in str(refused.value)
{%- endif %}
