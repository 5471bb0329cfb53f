"""Shared helpers of the template's tests: baking, Airflow environments, engines."""

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"

# The Airflow lines a generated DAG must work on, with the newest provider each allows.
AIRFLOW_LINES = {
    "airflow3": ["apache-airflow==3.3.2", "apache-airflow-providers-cncf-kubernetes==10.25.0"],
    "airflow2": ["apache-airflow==2.10.5", "apache-airflow-providers-cncf-kubernetes==10.10.0"],
}
AIRFLOW_TOOLS = ["kubernetes-validate==1.37.0", "pytest==9.0.3"]

# The tools installed next to this python (ruff, check-jsonschema, pre-commit, uv) come first.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

# .ci/run sets this: there, a test that lacks an engine fails instead of skipping.
REQUIRE_ENGINES = os.environ.get("CONFIANCE_REQUIRE_ENGINES") == "1"


def need(available, reason):
    """Skip (on a laptop) or fail (in CI) when something a test needs is missing."""
    if available:
        return
    if REQUIRE_ENGINES:
        pytest.fail(f"{reason} (CONFIANCE_REQUIRE_ENGINES=1: it must be provisioned here)")
    pytest.skip(reason)


def bake(output_dir, **answers):
    """Generate a job repo with cookiecutter's API; returns its folder."""
    return Path(cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def run(command, cwd=None, env=None, check=True, timeout=600):
    """Run a command, capture its output, and show it all when it fails."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))[:300]} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def wait_until(probe, timeout, every=1.0):
    """The first truthy value `probe` returns; an exception counts as "not yet". TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - a service that is still starting
            last_error = error
        time.sleep(every)
    raise TimeoutError(f"not ready after {timeout} s" + (f": {last_error}" if last_error else ""))


def ensure_venv(name, requirements):
    """A virtualenv under .cache/venvs with exactly these requirements; built once, reused after."""
    venv = CACHE / "venvs" / name
    python = venv / "bin" / "python"
    wanted = "\n".join(requirements)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{name}.lock", "w") as lock:  # pytest-xdist workers may race here
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / "requirements.lock"
        if not (marker.exists() and marker.read_text() == wanted and python.exists()):
            shutil.rmtree(venv, ignore_errors=True)
            run(["uv", "venv", "--quiet", "--python", sys.executable, venv])
            run(["uv", "pip", "install", "--quiet", "--python", python, *requirements], timeout=900)
            marker.write_text(wanted)
    return python


@pytest.fixture(scope="session", params=list(AIRFLOW_LINES))
def airflow_python(request):
    """The python of a venv holding one Airflow line, its Kubernetes provider, pytest and kubernetes-validate."""
    return ensure_venv(request.param, AIRFLOW_LINES[request.param] + AIRFLOW_TOOLS)


# Every option that changes what is generated, with the values worth baking.
OPTIONS = {
    "steps": {"1step": "run", "3steps": "prepare,train,evaluate"},
    "use_nfs": {"nfs": True, "nonfs": False},
    "use_gpu": {"cpu": False, "gpu": True},
    "extra_ca_certificates": {"nocerts": False, "certs": True},
    "schedule": {"manual": "none", "cron": "0 6 * * 1"},
}


def combinations():
    """{id: answers} for every combination of OPTIONS, e.g. '3steps-nfs-gpu-nocerts-cron'."""
    combos = {"": {}}
    for option, values in OPTIONS.items():
        combos = {
            f"{combo_id}-{value_id}".strip("-"): {**answers, option: value}
            for combo_id, answers in combos.items()
            for value_id, value in values.items()
        }
    return combos


COMBINATIONS = combinations()


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """Every combination, baked once: {id: repo folder}."""
    root = tmp_path_factory.mktemp("baked")
    return {combo_id: bake(root / combo_id, **answers) for combo_id, answers in COMBINATIONS.items()}


@pytest.fixture(scope="session")
def engines(tmp_path_factory):
    """A Docker engine with the base images, a registry standing in for Nexus, gitlab-ci-local.

    Yields the registry and the python of the platform's Airflow, which checks DAGs before a sync."""
    from engines import BASE_IMAGES, Registry, docker, ensure_base_images, start_dockerd
    from gitlab import GITLAB_CI_LOCAL

    need(GITLAB_CI_LOCAL, "gitlab-ci-local is not installed (npm install gitlab-ci-local@4.73.0)")
    need(shutil.which("docker-registry") and shutil.which("htpasswd"), "docker-registry and htpasswd are missing")
    need(start_dockerd(), "no Docker engine answers and dockerd cannot be started here")
    need(ensure_base_images(), f"no {' and '.join(BASE_IMAGES)} images and no debootstrap (as root) to make them")
    registry = Registry(tmp_path_factory.mktemp("registry")).start()
    airflow_python = ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS)
    yield registry, airflow_python
    registry.stop()
    pushed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{registry.host}/*/*").stdout.split()
    if pushed:
        docker("image", "rm", "--force", *pushed)


@pytest.fixture
def gitlab(tmp_path):
    """A GitLab holding the shared CI jobs and an airflow-dags repository."""
    from gitlab import FakeGitLab

    gitlab = FakeGitLab(tmp_path / "gitlab")
    gitlab.publish_ci_templates()
    gitlab.create_dags_repo()
    return gitlab
