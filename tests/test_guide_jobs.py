"""The platform guide's two real jobs, generated with --no-input answers and no
hand edit: Thales (one GPU step on a CUDA base, a dataset on NFS, the command
given in the form) and Air Liquide (prepare -> train -> predict, the GPU and
more memory for train only, MLflow credentials from a Kubernetes Secret)."""

import hashlib
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from support import ROOT
from support.commands import need, run
from support.guide_jobs import CUDA_BASE, DATASET, GUIDE_JOBS, SHOW_SECRET
from support.template import bake

RENDER_RUNS = Path(__file__).parent / "helpers" / "render_runs.py"
# What a person types in the form for the Thales job (the guide's own command, minus its GPU pinning).
THALES_COMMAND = "python3 main.py run --dry-run"
TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def guide_repos(tmp_path_factory):
    root = tmp_path_factory.mktemp("guide")
    return {name: bake(root / name, **answers) for name, answers in GUIDE_JOBS.items()}


def readme_guide_commands():
    """The cookiecutter commands the README gives for the two guide jobs."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"guide's two real jobs.*?```\n(.*?)```", readme, re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.startswith("cookiecutter ")]


def test_the_readme_commands_generate_the_guide_jobs(tmp_path, guide_repos):
    commands = readme_guide_commands()
    assert len(commands) == len(GUIDE_JOBS)
    for command in commands:
        arguments = [str(ROOT) if word == "gh:org/confiance-job" else word for word in command[1:]]
        run([Path(sys.executable).parent / "cookiecutter", *arguments, "--output-dir", tmp_path])
    for repo in guide_repos.values():
        dag = f"dags/{repo.name}.py"
        assert (tmp_path / repo.name / dag).read_text() == (repo / dag).read_text()


def render_runs(python, repo, runs, dag_file=None):
    """{run id: {step: pod}} as the operator builds them, each pod checked against the Kubernetes schema."""
    dag_file = dag_file or repo / "dags" / f"{repo.name}.py"
    return json.loads(run([python, RENDER_RUNS, dag_file, json.dumps(runs)], timeout=600).stdout)


@pytest.fixture(scope="module")
def guide_pods(airflow_python, guide_repos):
    """Two runs of each job, on one Airflow line."""
    runs = {
        "thales": {"manual__first": {"command": THALES_COMMAND}, "manual__second": {}},
        "air-liquide": {"manual__first": {}, "manual__second": {"env": {"EPOCHS": "2"}}},
    }
    return {name: render_runs(airflow_python, guide_repos[name], runs[name]) for name in guide_repos}


def container(pod):
    return pod["spec"]["containers"][0]


def env(pod):
    return {var["name"]: var["value"] for var in container(pod)["env"]}


def mounts(pod):
    return {mount["mountPath"]: mount["name"] for mount in container(pod).get("volumeMounts") or []}


def assert_gpu_settings(pod, gpus, memory_limit):
    spec, resources = pod["spec"], container(pod)["resources"]
    if gpus:
        assert resources["limits"]["nvidia.com/gpu"] == str(gpus)
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expression = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert expression == {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["t2-180"]}
        assert spec["tolerations"] == [TOLERATION]
        assert mounts(pod)["/dev/shm"] == "dshm"
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": memory_limit}} in spec["volumes"]
    else:
        assert "nvidia.com/gpu" not in resources["limits"]
        assert not spec.get("affinity") and not spec.get("tolerations") and "/dev/shm" not in mounts(pod)


def test_the_thales_job_runs_the_form_command_on_a_gpu_node_with_its_dataset(guide_pods):
    first, second = guide_pods["thales"]["manual__first"]["run"], guide_pods["thales"]["manual__second"]["run"]
    assert container(first)["args"] == [THALES_COMMAND]
    assert container(second)["args"] == ["python main.py run"]
    assert env(first)["CONFIANCE_BDD"] == DATASET
    assert mounts(first)["/nfsdata"] == "nfs-data"
    assert_gpu_settings(first, gpus=1, memory_limit="4Gi")
    assert env(first)["RUN_DIR"] == "/nfsdata/thales-aerial-photograph-interpretation/runs/manual__first"
    assert env(second)["RUN_DIR"].endswith("/runs/manual__second")


def test_the_air_liquide_job_gives_the_gpu_and_more_memory_to_train_only(guide_pods):
    pods = guide_pods["air-liquide"]["manual__first"]
    assert list(pods) == ["prepare", "train", "predict"]
    for step, pod in pods.items():
        resources = container(pod)["resources"]
        big = step == "train"
        assert resources["requests"] == {"cpu": "2" if big else "1", "memory": "8Gi" if big else "2Gi"}
        limits = {key: value for key, value in resources["limits"].items() if key != "nvidia.com/gpu"}
        assert limits == {"cpu": "4" if big else "2", "memory": "16Gi" if big else "4Gi"}
        assert_gpu_settings(pod, gpus=1 if big else 0, memory_limit="16Gi")
        assert container(pod)["envFrom"] == [{"secretRef": {"name": "mlflow-credentials"}}]


def test_each_run_of_the_air_liquide_job_has_a_folder_of_its_own(guide_pods):
    runs = guide_pods["air-liquide"]
    for step in ["prepare", "train", "predict"]:
        first, second = env(runs["manual__first"][step]), env(runs["manual__second"][step])
        assert first["RUN_DIR"] == "/nfsdata/air-liquide-timeseries/runs/manual__first"
        assert second["RUN_DIR"] == "/nfsdata/air-liquide-timeseries/runs/manual__second"
        assert first["DATA_DIR"] == second["DATA_DIR"] == "/nfsdata/air-liquide-timeseries"
        assert (first["RUN_ID"], first["TRY_NUMBER"], first["IMAGE_TAG"]) == ("manual__first", "1", "0.1.0")
        assert "EPOCHS" not in first and second["EPOCHS"] == "2"


# ---- For real: released through the shared CI, then run as the cluster would. ----

MLFLOW_SECRET = {"MLFLOW_TRACKING_USERNAME": "air-liquide-bot", "MLFLOW_TRACKING_PASSWORD": "mlfl0w-S3cret!/42"}


@pytest.fixture(scope="module")
def released(engines, tmp_path_factory):
    """Both jobs pushed with `git tag v0.1.0` through the shared CI: {name: (repo, pipeline, synced DAG)}."""
    from support.gitlab import FakeGitLab, make_job_repo
    from support.release import release

    registry, airflow_python = engines
    root = tmp_path_factory.mktemp("released")
    gitlab = FakeGitLab.with_shared_projects(root / "gitlab")
    result = {}
    for name, answers in GUIDE_JOBS.items():
        repo = make_job_repo(root / name, registry, **answers)
        pipeline = release(repo, gitlab, registry, airflow_python)
        assert pipeline.returncode == 0, pipeline.output
        synced = root / "synced" / f"{repo.name}.py"
        synced.parent.mkdir(exist_ok=True)
        synced.write_text(gitlab.dags_file(f"{repo.name}.py"))
        result[name] = (repo, pipeline, synced)
    return result


@pytest.fixture
def nfs(tmp_path):
    folder = tmp_path / "nfs"
    folder.mkdir()
    folder.chmod(0o777)  # the image runs as uid 1000, as on the real share
    return folder


@pytest.fixture
def pod_runner(engines, tmp_path):
    from support.pods import PODMAN, PodRunner

    need(PODMAN, "podman is not installed (apt-get install podman catatonit)")
    return PodRunner(tmp_path / "podman", engines[0])


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_both_images_build_and_the_cuda_one_brings_its_own_python(engines, released):
    from support.engines import docker

    for name, (repo, pipeline, _) in released.items():
        image = f"{engines[0].host}/confiance/{repo.name}:0.1.0"
        # The CUDA image's entrypoint prints a banner first, as the real one does: read the last line.
        assert docker("run", "--rm", image, "python", "--version").stdout.splitlines()[-1].startswith("Python 3.")
        assert docker("run", "--rm", image, "id", "-u").stdout.splitlines()[-1] == "1000"
        print(f"{name}: image built and pushed in {pipeline.job_seconds.get('nexus-image')} s")
    thales_log = released["thales"][1].logs["nexus-image"]
    assert CUDA_BASE in thales_log and "python3-pip" in thales_log  # Python came from the distribution


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_the_thales_pod_reads_its_dataset_on_nfs_and_runs_the_form_command(engines, released, pod_runner, nfs):
    repo, _, synced = released["thales"]
    dataset = nfs / DATASET.removeprefix("/nfsdata/")
    dataset.mkdir(parents=True)
    (dataset / "image_0001.tif").write_text("pixels")
    command = "python -c \"import os; print(sorted(os.listdir(os.environ['CONFIANCE_BDD'])))\" && python main.py run"
    pods = render_runs(engines[1], repo, {"manual__thales": {"command": command}}, synced)
    result = pod_runner.run(pods["manual__thales"]["run"], nfs)
    assert result.exit_code == 0, result.logs
    assert "['image_0001.tif']" in result.logs
    written = json.loads((nfs / repo.name / "runs" / "manual__thales" / "run.json").read_text())
    assert written["run_id"] == "manual__thales" and written["image_tag"] == "0.1.0"


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_two_air_liquide_runs_get_the_secret_and_write_to_two_folders(engines, released, pod_runner, nfs):
    repo, pipeline, synced = released["air-liquide"]
    confs = {
        "manual__a": {"env": {"EPOCHS": "1"}},
        "manual__b": {"env": {"EPOCHS": "5"}, "train_command": f"python main.py train && {SHOW_SECRET}"},
    }
    runs = render_runs(engines[1], repo, confs, synced)
    logs = ""
    for run_id, pods in runs.items():
        results = [pod_runner.run(pod, nfs, secrets={"mlflow-credentials": MLFLOW_SECRET}) for pod in pods.values()]
        assert [result.exit_code for result in results] == [0, 0, 0], [result.logs for result in results]
        logs += "".join(result.logs for result in results)
        folder = nfs / repo.name / "runs" / run_id
        assert sorted(path.name for path in folder.iterdir()) == ["predict.json", "prepare.json", "train.json"]
        assert json.loads((folder / "predict.json").read_text())["run_id"] == run_id
    password = MLFLOW_SECRET["MLFLOW_TRACKING_PASSWORD"]
    assert f"password sha256 {hashlib.sha256(password.encode()).hexdigest()}" in logs  # it reached the process
    everything_written = [logs, synced.read_text(), json.dumps(confs), json.dumps(runs), pipeline.output]
    assert [text for text in everything_written if password in text] == []
