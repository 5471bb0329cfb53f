"""Fixtures of the template's tests; what they are built from is the support library (tests/support)."""

import shutil

import pytest
from support.builders import BuildahRunners, Builder
from support.commands import need
from support.engines import BASE_IMAGES, Registry, docker, ensure_base_images, start_dockerd
from support.gitlab import FakeGitLab, need_gitlab_ci_local
from support.matrix import COMBINATIONS, Combination
from support.mlflow_server import MlflowServer
from support.template import bake
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

# tests/user_job is a job repo's code, tested inside a baked repo with the job's own requirements.
collect_ignore = ["user_job"]


@pytest.fixture(scope="session", params=list(AIRFLOW_LINES))
def airflow_python(request):
    """The python of a venv holding one Airflow line, its Kubernetes provider, pytest and kubernetes-validate."""
    return ensure_venv(request.param, AIRFLOW_LINES[request.param] + AIRFLOW_TOOLS)


def pytest_make_parametrize_id(config, val, argname):
    """A combination's test id is its own id."""
    return val.id if isinstance(val, Combination) else None


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """Every combination, baked once: {id: repo folder}."""
    root = tmp_path_factory.mktemp("baked")
    return {combo.id: bake(root / combo.id, **combo.answers) for combo in COMBINATIONS}


@pytest.fixture(scope="session")
def engines(tmp_path_factory):
    """A Docker engine with the base images, a registry standing in for Nexus, gitlab-ci-local.

    Yields the registry and the python of the platform's Airflow, which checks DAGs before a sync."""
    need_gitlab_ci_local()
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


@pytest.fixture(scope="session")
def buildah_runners(tmp_path_factory):
    """Fresh buildah runners for pipelines that build with IMAGE_BUILDER=buildah (tests/support/builders.py)."""

    return BuildahRunners(tmp_path_factory.mktemp("buildah"))


@pytest.fixture(params=["docker", "buildah"])
def builder(request, engines, buildah_runners):
    """Each image builder of the shared build job, with the environment of a fresh CI runner for it."""

    builder = Builder(request.param, buildah_runners if request.param == "buildah" else None)
    yield builder
    if request.param == "buildah":
        buildah_runners.clean_up()


@pytest.fixture
def gitlab(tmp_path):
    """A GitLab holding the shared CI jobs and an airflow-dags repository."""

    return FakeGitLab.with_shared_projects(tmp_path / "gitlab")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server with users (tests/support/mlflow_server.py). Launched at once, it starts while
    other fixtures work (an image build); call its ready() before talking to it."""

    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).launch()
    yield server
    server.stop()
