"""confiance-job run: a rendered pod turned into the engine's command line, and the host's data folder."""

import os
import stat

import pytest
from confiance_job.cli import main
from confiance_job.local import (
    LocalRunError,
    engine_args,
    engine_cpus,
    engine_memory,
    local_run_id,
    prepare_data,
    run_pods,
)

IMAGE = "repo.irtsysx.fr:5086/confiance/air-liquide-timeseries:dev"
RUN_DIR = "/nfsdata/air-liquide-timeseries/runs/local__20261204T180000Z"


def train_pod(nfs=True, gpus="1"):
    """The train pod of the Air Liquide job, as `confiance-job render` prints it (trimmed)."""
    data_dir = "/nfsdata/air-liquide-timeseries" if nfs else "/data"
    env = {
        "JOB_NAME": "air-liquide-timeseries",
        "DATA_DIR": data_dir,
        "RUN_ID": "local__20261204T180000Z",
        "RUN_DIR": f"{data_dir}/runs/local__20261204T180000Z",
        "IMAGE_TAG": "dev",
        "TRY_NUMBER": "1",
    }
    volumes = [{"emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}, "name": "dshm"}] if gpus else []
    mounts = [{"mountPath": "/dev/shm", "name": "dshm"}] if gpus else []
    if nfs:
        volumes.insert(0, {"name": "nfs-data", "nfs": {"path": "/nfsdata", "server": "152.228.211.245"}})
        mounts.insert(0, {"mountPath": "/nfsdata", "name": "nfs-data"})
    limits = {"cpu": "4", "memory": "16Gi", **({"nvidia.com/gpu": gpus} if gpus else {})}
    container = {
        "name": "base",
        "image": IMAGE.replace(":dev", ":0.1.0"),
        "command": ["bash", "-c"],
        "args": ["python main.py train"],
        "env": [{"name": name, "value": value} for name, value in env.items()],
        "envFrom": [{"secretRef": {"name": "mlflow-credentials"}}],
        "resources": {"limits": limits, "requests": {"cpu": "2", "memory": "8Gi"}},
        "volumeMounts": mounts,
    }
    return {
        "metadata": {"name": "air-liquide-timeseries-train-x"},
        "spec": {"containers": [container], "volumes": volumes},
    }


def option(args, name):
    """The values given to an option, in order."""
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


@pytest.mark.parametrize(
    "quantity, cpus", [("500m", "0.5"), ("2", "2"), ("1.5", "1.5"), ("250m", "0.25"), (".5", "0.5")]
)
def test_kubernetes_cpus_become_engine_cpus(quantity, cpus):
    assert engine_cpus(quantity) == cpus


@pytest.mark.parametrize(
    "quantity, memory", [("16Gi", "16g"), ("512Mi", "512m"), ("1536Mi", "1536m"), ("1G", "1000000000"), ("4k", "4000")]
)
def test_kubernetes_memory_becomes_engine_memory(quantity, memory):
    assert engine_memory(quantity) == memory


def test_the_pod_becomes_a_run_with_its_command_env_limits_data_and_secrets_file(tmp_path):
    args, notes = engine_args(
        train_pod(), image=IMAGE, data=tmp_path, step="train", secrets_file=".env.secrets", cpus_here=8
    )
    assert args[:3] == ["docker", "run", "--rm"]
    assert option(args, "--cpus") == ["4"] and option(args, "--memory") == ["16g"]
    assert option(args, "--shm-size") == ["16g"]  # the GPU step's memory-backed /dev/shm
    assert option(args, "--volume") == [f"{tmp_path.resolve()}:/nfsdata"]
    assert option(args, "--env") == [
        "JOB_NAME=air-liquide-timeseries",
        "DATA_DIR=/nfsdata/air-liquide-timeseries",
        "RUN_ID=local__20261204T180000Z",
        f"RUN_DIR={RUN_DIR}",
        "IMAGE_TAG=dev",
        "TRY_NUMBER=1",
    ]
    assert option(args, "--env-file") == [".env.secrets"]
    # The pod's command replaces the image's entrypoint; its args follow the image.
    assert args[-5:] == ["--entrypoint", "bash", IMAGE, "-c", "python main.py train"]
    assert notes == ["train: asks for 1 GPU(s); this machine has none (no nvidia-smi), so it runs on the CPU here"]


def test_a_gpu_step_gets_its_gpus_where_the_machine_has_some():
    docker, notes = engine_args(train_pod(gpus="2"), image=IMAGE, data="data", has_gpu=True)
    assert option(docker, "--gpus") == ["2"] and notes == []
    podman, _ = engine_args(train_pod(), image=IMAGE, data="data", engine="podman", has_gpu=True)
    assert podman[0] == "podman" and option(podman, "--device") == ["nvidia.com/gpu=all"]


def test_a_cpu_limit_above_the_machine_is_capped_and_said():
    args, notes = engine_args(train_pod(gpus=None), image=IMAGE, data="data", step="train", cpus_here=2)
    assert option(args, "--cpus") == ["2"]
    assert notes == ["train: CPU limit 4, this machine has 2 CPUs: --cpus 2"]
    assert "--gpus" not in args and "--shm-size" not in args


def test_without_nfs_the_data_folder_is_mounted_at_the_root_of_data_dir(tmp_path):
    args, _ = engine_args(train_pod(nfs=False, gpus=None), image=IMAGE, data=tmp_path)
    assert option(args, "--volume") == [f"{tmp_path.resolve()}:/data"]


def test_a_volume_of_the_pod_that_has_no_local_stand_in_is_named(tmp_path):
    pod = train_pod(gpus=None)
    pod["spec"]["volumes"].append({"name": "models", "persistentVolumeClaim": {"claimName": "models"}})
    pod["spec"]["containers"][0]["volumeMounts"].append({"mountPath": "/models", "name": "models"})
    args, notes = engine_args(pod, image=IMAGE, data=tmp_path, step="train")
    assert notes == ["train: the pod's volume models at /models is not mounted here"]
    assert option(args, "--volume") == [f"{tmp_path.resolve()}:/nfsdata"]


def test_the_run_folder_is_made_under_data_and_writable_by_the_image_user(tmp_path):
    data = tmp_path / "data"
    folder = prepare_data(train_pod(), data)
    assert folder == data / "air-liquide-timeseries" / "runs" / "local__20261204T180000Z"
    assert folder.is_dir()
    if os.getuid() != 1000:  # the image runs as uid 1000
        for path in [folder, *folder.parents][:4]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o777, path
    assert stat.S_IMODE(tmp_path.stat().st_mode) != 0o777  # nothing above data/


def test_a_pod_with_secrets_and_no_secrets_file_says_what_to_write_and_runs_nothing(tmp_path):
    with pytest.raises(LocalRunError) as error:
        run_pods({"train": train_pod()}, IMAGE, data=tmp_path / "data", secrets_file=tmp_path / ".env.secrets")
    message = str(error.value)
    assert "Secret(s) mlflow-credentials" in message and ".env.secrets is missing" in message
    assert "MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD" in message
    assert not (tmp_path / "data").exists()


def test_local_run_ids_are_safe_folder_names():
    run_id = local_run_id()
    assert run_id.startswith("local__") and run_id.replace("_", "").isalnum()


def test_run_needs_one_step_or_all(capsys):
    assert main(["run"]) == 1
    assert "run: give one step, or --all for every step in order" in capsys.readouterr().err
    assert main(["run", "train", "--all"]) == 1
