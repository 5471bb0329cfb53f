"""The generated DAG works on both Airflow lines: it imports, chains its steps,
and the pods it builds are valid Kubernetes pods with what the answers asked for."""

import ast
import json
import re
from pathlib import Path

import pytest
from support.commands import run
from support.matrix import COMBINATIONS, fewest_covering_every_value, find
from support.template import DEFAULTS, bake

CHECK_DAGS = Path(__file__).parent / "helpers" / "check_dags.py"

# The combinations whose generated test suites run in full (slow): the fewest that use every option value.
SUITE_COMBINATIONS = fewest_covering_every_value(COMBINATIONS)


def full_conf():
    """The "full" conf check_dags.py renders pods with (it runs in an Airflow venv: read here, not imported)."""
    module = ast.parse(CHECK_DAGS.read_text())
    (conf,) = [
        node.value
        for node in module.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "FULL_CONF"
    ]
    return ast.literal_eval(conf)


# The confs check_dags.py renders each DAG's pods with, by the name its facts give them.
CONFS = {"defaults": {}, "full": full_conf()}
RENDER_RUN_ID = "manual__render"  # the run id the platform's render_pods gives a run


def split_list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def asked_resources(answers, step):
    """A step's {kind: [request, limit]} as the answers ask: cpu/memory/gpu_count, then step_resources
    ('train: memory=8Gi/16Gi cpu=2; predict: gpus=2': request/limit, or one value for both)."""
    asked = {
        "cpu": [answers["cpu_request"], answers["cpu_limit"]],
        "memory": [answers["memory_request"], answers["memory_limit"]],
        "gpus": [answers["gpu_count"]] * 2,
    }
    for part in filter(str.strip, answers["step_resources"].split(";")):
        named_step, _, settings = part.partition(":")
        if named_step.strip() != step:
            continue
        for setting in settings.split():
            kind, _, value = setting.partition("=")
            request, _, limit = value.partition("/")
            asked[kind] = [request, limit or request]
    return asked


def expected_resources(combo, step, conf):
    """A step's container resources: what the answers ask, the form's cpu/memory replacing both request and limit."""
    asked = asked_resources(combo.context, step)
    for kind in ("cpu", "memory"):
        if conf.get(kind):
            asked[kind] = [conf[kind]] * 2
    gpus = {"nvidia.com/gpu": asked["gpus"][1]} if step in combo.gpu_steps else {}
    return {
        "requests": {"cpu": asked["cpu"][0], "memory": asked["memory"][0]},
        "limits": {"cpu": asked["cpu"][1], "memory": asked["memory"][1], **gpus},
    }


def expected_env(combo, conf):
    """Every step's env: the job's name and data folder, env_vars, then what the run and the form add."""
    answers = combo.context
    data_dir = f"{answers['nfs_mount_path']}/{answers['project_slug']}" if answers["use_nfs"] else "/data"
    env_vars = dict(item.split("=", 1) for item in split_list(answers["env_vars"]))
    mlflow = answers["mlflow_tracking_uri"]
    return {
        "JOB_NAME": answers["project_slug"],
        "DATA_DIR": data_dir,
        **({"MLFLOW_TRACKING_URI": mlflow, "MLFLOW_EXPERIMENT_NAME": answers["project_slug"]} if mlflow else {}),
        **env_vars,
        "RUN_ID": RENDER_RUN_ID,
        "RUN_DIR": f"{data_dir}/runs/{RENDER_RUN_ID}",
        "IMAGE_TAG": conf.get("image_tag", answers["version"]),
        "TRY_NUMBER": "1",
        **conf.get("env", {}),
    }


def expected_volumes(combo, step):
    """A step's pod volumes and (name, mount path)s: the NFS share, then a GPU step's memory-backed /dev/shm
    as large as the step's own memory limit (PyTorch's DataLoader workers need more than 64 MB)."""
    answers, volumes, mounts = combo.context, [], []
    if answers["use_nfs"]:
        volumes.append({"name": "nfs-data", "nfs": {"server": answers["nfs_server"], "path": answers["nfs_path"]}})
        mounts.append(("nfs-data", answers["nfs_mount_path"]))
    if step in combo.gpu_steps:
        memory_limit = asked_resources(answers, step)["memory"][1]
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": memory_limit}})
        mounts.append(("dshm", "/dev/shm"))
    return volumes, mounts


def expected_gpu_placement(combo, step):
    """(affinity, tolerations) of a step's pod: GPU steps go to the GPU nodes, and only they may."""
    if step not in combo.gpu_steps:
        return {}, []
    node_type = {
        "key": "node.kubernetes.io/instance-type",
        "operator": "In",
        "values": [combo.context["gpu_instance_type"]],
    }
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [node_type]}]}
        }
    }
    return affinity, [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


@pytest.fixture(scope="module")
def dag_facts(airflow_python, baked):
    """Facts about every baked DAG, gathered in one process of the given Airflow line."""
    output = run([airflow_python, CHECK_DAGS, *baked.values()], timeout=900).stdout
    facts = json.loads(output)
    return {combo_id: facts[str(repo)] for combo_id, repo in baked.items()}


@pytest.mark.parametrize("combo", COMBINATIONS)
def test_the_dag_imports_and_builds_valid_pods(dag_facts, combo):
    answers, facts = combo.context, dag_facts[combo.id]
    assert facts["import_errors"] == {}
    assert facts["dag_file_warnings"] == []
    steps = combo.steps
    assert facts["tasks"] == steps
    assert facts["upstream"] == {step: steps[i - 1 : i] for i, step in enumerate(steps)}
    assert facts["schedule"] == ("None" if answers["schedule"] == "none" else answers["schedule"])
    assert facts["tags"] == sorted(["confiance-job", answers["project_slug"]])
    assert facts["invalid_pods"] == []


@pytest.mark.parametrize("combo", COMBINATIONS)
def test_the_pods_carry_what_the_answers_asked(dag_facts, combo):
    answers = combo.context
    image = f"{answers['docker_registry']}/{answers['docker_repository']}/{answers['project_slug']}"
    for conf_name, pods in dag_facts[combo.id]["pods"].items():
        conf = CONFS[conf_name]
        assert list(pods) == combo.steps
        for step, pod in pods.items():
            spec = pod["spec"]
            (container,) = spec["containers"]
            assert container["image"] == f"{image}:{conf.get('image_tag', answers['version'])}"
            assert container["imagePullPolicy"] == "Always"
            assert spec["imagePullSecrets"] == [{"name": answers["image_pull_secret"]}]
            assert pod["metadata"]["namespace"] == answers["namespace"]
            assert re.fullmatch(rf"{answers['project_slug']}-{step}-[a-z0-9]{{8}}", pod["metadata"]["name"])
            assert container["command"] == ["bash", "-c"] and container["args"] == [f"python main.py {step}"]
            assert {var["name"]: var["value"] for var in container["env"]} == expected_env(combo, conf)
            secrets = [{"secretRef": {"name": name}} for name in split_list(answers["secrets"])]
            assert (container.get("envFrom") or []) == secrets
            assert container["resources"] == expected_resources(combo, step, conf)
            volumes, mounts = expected_volumes(combo, step)
            assert (spec.get("volumes") or []) == volumes
            assert [(m["name"], m["mountPath"]) for m in container.get("volumeMounts") or []] == mounts
            affinity, tolerations = expected_gpu_placement(combo, step)
            assert (spec.get("affinity") or {}) == affinity
            assert (spec.get("tolerations") or []) == tolerations


@pytest.mark.parametrize("combo", SUITE_COMBINATIONS)
def test_the_generated_test_suite_passes(airflow_python, baked, combo):
    result = run([airflow_python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=baked[combo.id], timeout=900)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed in ", summary), summary  # nothing skipped, nothing failed


def test_a_broken_dag_fails_the_generated_tests(airflow_python, tmp_path):
    repo = bake(tmp_path)
    dag = repo / "dags" / f"{DEFAULTS['project_slug']}.py"
    dag.write_text(dag.read_text().replace("image_pull_policy=", "image_pull_polcy="))
    result = run(
        [airflow_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_dag.py"], cwd=repo, check=False
    )
    assert result.returncode == 1
    assert "image_pull_polcy" in result.stdout


def test_the_render_command_prints_the_pods_or_the_reason_airflow_would_refuse(airflow_python, baked):
    combo = find(steps="several")
    repo, steps = baked[combo.id], combo.steps
    command = [airflow_python.parent / "confiance-job", "render"]  # what `make render` runs
    conf = {"image_tag": "0.2.0", f"{steps[1]}_command": f"python main.py {steps[1]} --fast"}
    pods = json.loads(run([*command, json.dumps(conf)], cwd=repo).stdout)
    assert pods["kind"] == "List" and [pod["metadata"]["labels"]["task_id"] for pod in pods["items"]] == steps
    assert {pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1] for pod in pods["items"]} == {"0.2.0"}
    assert pods["items"][1]["spec"]["containers"][0]["args"] == [f"python main.py {steps[1]} --fast"]
    one = json.loads(run([*command, "{}", "--step", steps[-1]], cwd=repo).stdout)
    assert one["kind"] == "Pod" and one["metadata"]["labels"]["task_id"] == steps[-1]
    refused = run([*command, '{"memory": "8 GB"}'], cwd=repo, check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines()[-2:] == [
        "render: the Trigger form would refuse these values:",
        '  memory: "8 GB" is not a Kubernetes quantity. For example: "16Gi" or "512Mi"',
    ]
