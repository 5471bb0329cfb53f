"""`make run` and `make run-all` in the guide's Air Liquide job: the DAG's own pods, run with the real Docker
engine on the job repo's data/ folder, with the Secrets' keys from .env.secrets."""

import hashlib
import json
import os
import time

import pytest
from support.commands import need, run
from support.guide_jobs import GUIDE_JOBS, SHOW_SECRET
from support.template import bake
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engines")]

IMAGE = "repo.irtsysx.fr:5086/confiance/air-liquide-timeseries:dev"  # what make build tags
USER, PASSWORD = "air-liquide-bot", "l0cal-S3cret!/run"
STEPS = ["prepare", "train", "predict"]


@pytest.fixture(scope="module")
def airflow_bin():
    """A Docker engine with the base images, and the platform's Airflow venv (what make dev installs)."""
    from support.engines import BASE_IMAGES, ensure_base_images, start_dockerd

    need(start_dockerd(), "no Docker engine answers and dockerd cannot be started here")
    need(ensure_base_images(), f"no {' and '.join(BASE_IMAGES)} images and no debootstrap (as root) to make them")
    return ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS).parent


@pytest.fixture(scope="module")
def job(airflow_bin, tmp_path_factory):
    """The Air Liquide job repo with its .env.secrets, and its image built as make build does."""
    from support.engines import docker

    repo = bake(tmp_path_factory.mktemp("local"), **GUIDE_JOBS["air-liquide"])
    (repo / ".env.secrets").write_text(f"MLFLOW_TRACKING_USERNAME={USER}\nMLFLOW_TRACKING_PASSWORD={PASSWORD}\n")
    docker("build", "--quiet", "--tag", IMAGE, repo, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    yield repo
    docker("image", "rm", "--force", IMAGE, check=False)


def make(airflow_bin, repo, *args):
    """A make target of the job repo, with the platform's Airflow venv as its .venv (dev and build are done)."""
    return run(["make", "-o", "dev", "-o", "build", f"BIN={airflow_bin}", *args], cwd=repo, check=False)


def run_folders(repo):
    return sorted((repo / "data" / repo.name / "runs").iterdir())


@pytest.fixture(scope="module")
def two_runs(airflow_bin, job):
    """Two make run-all, the second printing a hash of the password in train: [(run folder, output)]."""
    results = []
    for conf in [{}, {"train_command": f"python main.py train && {SHOW_SECRET}"}]:
        started = time.perf_counter()
        result = make(airflow_bin, job, "run-all", *([f"CONF={json.dumps(conf)}"] if conf else []))
        print(f"make run-all: {time.perf_counter() - started:.1f} s")
        assert result.returncode == 0, result.stdout + result.stderr
        results.append((run_folders(job)[-1], result.stdout + result.stderr))
    return results


def test_make_run_all_passes_files_from_prepare_to_predict_through_the_run_folder_under_data(two_runs):
    for folder, output in two_runs:
        assert sorted(path.name for path in folder.iterdir()) == sorted(f"{step}.json" for step in STEPS)
        assert f'"run_id": "{folder.name}"' in (folder / "predict.json").read_text()  # the RUN_ID every step got
        assert folder.name.startswith("local__")
        assert output.count("$ docker run --rm ") == 3
        assert "train: asks for 1 GPU(s); this machine has none (no nvidia-smi), so it runs on the CPU here" in output


def test_each_run_gets_a_folder_of_its_own(job, two_runs):
    assert two_runs[0][0] != two_runs[1][0]
    assert run_folders(job) == [two_runs[0][0], two_runs[1][0]]


def test_the_secret_reaches_the_step_and_shows_in_no_output_command_or_image(job, two_runs):
    from support.engines import docker

    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert f"password sha256 {digest}" in two_runs[1][1]  # it reached the process
    commands = [line for _, output in two_runs for line in output.splitlines() if line.startswith("$ docker")]
    assert commands and all("--env-file .env.secrets" in line for line in commands)
    written = [output for _, output in two_runs] + [path.read_text() for path in job.rglob("data/**/*.json")]
    assert [text for text in written if PASSWORD in text or USER in text] == []
    assert ".env.secrets" not in docker("run", "--rm", IMAGE, "ls", "-a", "/app").stdout  # .dockerignore
    assert ".env.secrets" in (job / ".gitignore").read_text().split()


def test_make_run_reruns_one_step_in_an_earlier_runs_folder(airflow_bin, job, two_runs):
    folder = two_runs[0][0]
    before = (folder / "predict.json").stat().st_mtime_ns
    result = make(airflow_bin, job, "run", "STEP=predict", f"RUN_ID={folder.name}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "predict.json").stat().st_mtime_ns != before
    assert len(run_folders(job)) == 2


def test_a_failing_step_stops_the_run_with_its_exit_code(airflow_bin, job, two_runs):
    command = [airflow_bin / "confiance-job", "run", "--all", "--conf", '{"train_command": "exit 3"}']
    result = run(command, cwd=job, check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "train failed with exit code 3" in result.stdout and "predict:" not in result.stdout
    assert [path.name for path in run_folders(job)[-1].iterdir()] == ["prepare.json"]


def test_podman_runs_the_same_pods(airflow_bin, job, two_runs, tmp_path):
    """On a machine with podman rather than docker: the same run, the files passed along in data/."""
    from support.pods import CONTAINERS_CONF, PODMAN

    need(PODMAN, "podman is not installed (apt-get install podman catatonit)")
    (tmp_path / "containers.conf").write_text(CONTAINERS_CONF)  # this machine's limits (no systemd, file limits)
    env = {**os.environ, "CONTAINERS_CONF": str(tmp_path / "containers.conf")}
    run([PODMAN, "pull", "--quiet", f"docker-daemon:{IMAGE}"], env=env)  # the image make build made, in podman
    try:
        command = [airflow_bin / "confiance-job", "run", "--all", "--engine", "podman", "--image", IMAGE]
        result = run(command, cwd=job, env=env, check=False)
    finally:
        run([PODMAN, "image", "rm", "--force", IMAGE], env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("$ podman run --rm ") == 3
    folder = run_folders(job)[-1]
    assert folder not in (two_runs[0][0], two_runs[1][0])
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{step}.json" for step in STEPS)
