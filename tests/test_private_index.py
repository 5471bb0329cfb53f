"""The Nexus PyPI, stood in for by pypiserver with authentication (tests/support/pypi.py): the template
repo's own CI publishes the confiance-job package to it with twine on a tag; a baked repo's dev
setup installs the package from it; an image build installs a private package from it through
the BuildKit secret, and fails clearly without; the credentials are never printed or stored."""

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from confiance_job import __version__ as PACKAGE_VERSION
from support import CACHE, ROOT
from support.commands import need, run
from support.engines import docker
from support.gitlab import GITLAB_CI_LOCAL, PipelineRun, git, need_gitlab_ci_local
from support.leaks import image_leaks
from support.pypi import (
    PYPI_SERVER,
    PrivateIndex,
    build_distributions,
    clean_pip_env,
    copy_of_package,
    index_secrets,
    leaked,
    write_demo_package,
)
from support.template import bake

TEMPLATE_REMOTE = "https://git.irt-systemx.fr/confianceai/ec_1/fa2_infrastructure/confiance-job.git"
INIT_FILE = "package/src/confiance_job/__init__.py"
WHEEL = f"confiance_job-{PACKAGE_VERSION}-py3-none-any.whl"
DEMO_PACKAGE, DEMO_TEXT = "confiance-private-demo", "served by the private index"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """The stand-in index, holding confiance-job and a private package, both uploaded with twine."""
    need(PYPI_SERVER, "pypiserver is not installed (re-run make .venv/bin/cookiecutter)")
    folder = tmp_path_factory.mktemp("private-index")
    index = PrivateIndex(folder / "server").start()
    try:
        index.upload(*build_distributions(copy_of_package(folder / "package"), folder / "dist"))
        demo = write_demo_package(folder / "demo", DEMO_PACKAGE, "0.1.0", DEMO_TEXT)
        index.upload(*build_distributions(demo, folder / "demo-dist", "--wheel"))
        yield index
    finally:
        index.stop()


def test_the_index_serves_nothing_without_credentials(index):
    assert index.files() == sorted(
        [WHEEL, f"confiance_job-{PACKAGE_VERSION}.tar.gz", "confiance_private_demo-0.1.0-py3-none-any.whl"]
    )
    assert index.status("simple/confiance-job/") == 401
    assert index.status(f"packages/{WHEEL}") == 401
    assert index.status("simple/confiance-job/", credentials=True) == 200
    # What it does not hold goes to PyPI, as a Nexus group repository proxies it.
    assert index.status("simple/six/", credentials=True) == 303


# --- a baked repo's dev setup -----------------------------------------------------------------


def test_make_dev_installs_the_package_from_the_index_and_the_make_commands_use_it(index, tmp_path):
    """`make dev` of a baked repo, pip's index being the stand-in (as PIP_INDEX_URL, the way the job
    repo's CI test job sets it): the package from the authenticated index, the public packages
    (Airflow and its ~160 dependencies) through its redirect to PyPI, as a Nexus group does.
    Then `make test`, `make render` and `make trigger` run through the installed package, and a second
    `make dev` has nothing to do."""
    repo = bake(tmp_path, project_name="dev-setup")
    assert f"confiance-job=={PACKAGE_VERSION}\n" in (repo / "requirements-dev.txt").read_text()
    env = clean_pip_env(PIP_INDEX_URL=index.simple_url(), PIP_CACHE_DIR=str(CACHE / "pip-dev-setup"))
    started = time.perf_counter()
    dev = run(["make", "dev"], cwd=repo, env=env, timeout=900)
    dev_seconds = time.perf_counter() - started
    assert index.served(f"GET /packages/{WHEEL}", 200)
    assert index.served("GET /simple/apache-airflow/", 303)  # the public packages through the same index
    assert run([repo / ".venv" / "bin" / "confiance-job", "--version"]).stdout.strip().endswith(PACKAGE_VERSION)
    assert run(["make", "dev"], cwd=repo, env=env).stdout.strip() == "make: Nothing to be done for 'dev'."

    tested = run(["make", "test"], cwd=repo, env=env, timeout=900)
    assert re.search(r"\d+ passed", tested.stdout) and "failed" not in tested.stdout
    # `make render > pods.json` as a user types it: its output is the JSON and nothing else.
    rendered = json.loads(run(["make", "render", 'CONF={"image_tag": "0.2.0"}'], cwd=repo, env=env).stdout)
    assert rendered["items"][0]["spec"]["containers"][0]["image"].endswith("/dev-setup:0.2.0")
    no_airflow = {**env, "AIRFLOW_URL": "http://127.0.0.1:9", "AIRFLOW_USER": "me", "AIRFLOW_PASSWORD": "x"}
    triggered = run(["make", "trigger", "TAG=0.2.0"], cwd=repo, env=no_airflow, check=False)
    assert "trigger: cannot reach Airflow at http://127.0.0.1:9/auth/token" in triggered.stderr

    started = time.perf_counter()
    reinstall = [repo / ".venv" / "bin" / "pip", "install", "--force-reinstall", "--no-deps", "--no-cache-dir"]
    again = run([*reinstall, f"confiance-job=={PACKAGE_VERSION}"], env=env)
    install_seconds = time.perf_counter() - started
    assert f"Successfully installed confiance-job-{PACKAGE_VERSION}" in again.stdout

    printed = dev.stdout + dev.stderr + tested.stdout + again.stdout + again.stderr + index.log.read_text()
    assert leaked(index_secrets(index), printed) == []
    print(f"make dev {dev_seconds:.1f} s; confiance-job alone from the index {install_seconds:.2f} s")


# --- the image build: the private package through the build secret ----------------------------


def job_repo_needing(folder, requirement):
    """A job repo needing `requirement`; it trusts this network's CA (which inspects TLS), as the
    index stand-in sends what it does not hold (uv itself, for one) to pypi.org, as Nexus proxies it."""
    repo = bake(folder, project_name="private-deps", extra_ca_certificates=True)
    for certificate in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(certificate, repo / "certs")
    (repo / "requirements.txt").write_text(f"{requirement}\n")
    return repo


def docker_build(repo, tag, *options):
    """`make build`'s command (Debian's client speaks BuildKit); --network host reaches the loopback index.
    --no-cache: BuildKit leaves secrets out of its cache keys, so a layer an earlier build made with
    (or without) the secret would be reused, and this build would prove nothing."""
    command = ["build", "--no-cache", "--progress", "plain", "--network", "host", *options, "--tag", tag, repo]
    return docker(*command, check=False, env={**os.environ, "DOCKER_BUILDKIT": "1"})


@pytest.fixture
def image_tag():
    tag = "confiance-private-index-test:dev"
    yield tag
    docker("image", "rm", "--force", tag, check=False)


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_the_image_installs_a_private_package_through_the_build_secret(engines, index, tmp_path, image_tag):
    repo = job_repo_needing(tmp_path / "job", f"{DEMO_PACKAGE}==0.1.0")
    pip_conf = index.write_pip_conf(tmp_path / "pip.conf")  # outside the build context
    started = time.perf_counter()
    build = docker_build(repo, image_tag, "--secret", f"id=pip_conf,src={pip_conf}")
    build_seconds = time.perf_counter() - started
    assert build.returncode == 0, build.stdout + build.stderr
    module = DEMO_PACKAGE.replace("-", "_")
    text = docker("run", "--rm", image_tag, "python", "-c", f"import {module}; print({module}.TEXT)").stdout
    assert text.strip() == DEMO_TEXT
    assert index.served("GET /packages/confiance_private_demo-0.1.0-py3-none-any.whl", 200)

    secrets = index_secrets(index)
    assert image_leaks(image_tag, secrets, tmp_path) == []
    assert leaked(secrets, build.stdout, build.stderr, index.log.read_text()) == []
    print(f"build with the private package {build_seconds:.1f} s")


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_the_image_build_without_the_secret_fails_clearly(engines, index, tmp_path, image_tag):
    repo = job_repo_needing(tmp_path / "job", f"{DEMO_PACKAGE}==0.1.0")
    started = time.perf_counter()
    build = docker_build(repo, image_tag)
    build_seconds = time.perf_counter() - started
    printed = build.stdout + build.stderr
    assert build.returncode != 0
    assert f"Because {DEMO_PACKAGE} was not found in the package registry" in printed  # uv's words
    # The Dockerfile's own message, as the step printed it (BuildKit also shows the command that echoes it).
    assert re.search(
        r"^#\d+ [\d.]+ ERROR: could not install requirements\.txt\..* as the pip_conf build secret", printed, re.M
    )
    assert leaked(index_secrets(index), printed) == []
    print(f"failed build without the secret {build_seconds:.1f} s")


# --- the template repo's own CI ---------------------------------------------------------------


def template_repo(folder):
    """This checkout's CI file and package in a git repository of their own, as GitLab would check it out."""
    folder.mkdir(parents=True)
    for name in (".gitlab-ci.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    copy_of_package(folder / "package")
    git("init", "-q", "-b", "main", cwd=folder)
    git("add", ".", cwd=folder)
    git("commit", "-q", "-m", "The template", cwd=folder)
    git("remote", "add", "origin", TEMPLATE_REMOTE, cwd=folder)
    return folder


def publish_variables(index, **overrides):
    """The CI/CD variables an admin sets on the template's project; NEXUS_PYPI_URL makes the jobs
    install their tools through the index too (its fallback to PyPI standing in for Nexus's proxy)."""
    variables = {
        "NEXUS_PYPI_UPLOAD_URL": index.url,
        "NEXUS_USER": index.user,
        "NEXUS_PASSWORD": index.password,
        "NEXUS_PYPI_URL": index.simple_url(credentials=False),
        **overrides,
    }
    return {name: value for name, value in variables.items() if value is not None}


def run_ci(repo, variables, *jobs, tag=None):
    """gitlab-ci-local on this machine's shell: a tag pipeline (or a branch one), or only `jobs`."""
    command = [GITLAB_CI_LOCAL, "--force-shell-executor"]
    if tag:
        command += ["--variable", f"CI_COMMIT_TAG={tag}", "--unset-variable", "CI_COMMIT_BRANCH"]
    for name, value in variables.items():
        command += ["--variable", f"{name}={value}"]
    shutil.rmtree(repo / ".gitlab-ci-local" / "output", ignore_errors=True)  # logs of this run only
    started = time.perf_counter()
    result = run([*command, *jobs], cwd=repo, env=clean_pip_env(), check=False, timeout=600)
    seconds = time.perf_counter() - started
    logs = {log.stem: log.read_text() for log in (repo / ".gitlab-ci-local" / "output").glob("*.log")}
    return PipelineRun(result.returncode, result.stdout + result.stderr, logs, {}, seconds)


def pipeline_jobs(repo, *variables):
    command = [GITLAB_CI_LOCAL, "--list-json", *variables]
    return sorted(job["name"] for job in json.loads(run(command, cwd=repo).stdout) if job["when"] != "never")


def printed_by(pipeline):
    return pipeline.output + "".join(pipeline.logs.values())


def test_the_ci_file_is_valid_gitlab_ci():
    schema = ["--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci"]
    run(["check-jsonschema", *schema, ROOT / ".gitlab-ci.yml"])


def test_branches_run_the_package_tests_and_package_tags_publish(tmp_path):
    need_gitlab_ci_local()
    repo = template_repo(tmp_path / "template")
    assert pipeline_jobs(repo) == ["package-tests"]
    tag = ["--variable", f"CI_COMMIT_TAG=package-v{PACKAGE_VERSION}", "--unset-variable", "CI_COMMIT_BRANCH"]
    assert pipeline_jobs(repo, *tag) == ["package-tests", "publish-package"]
    other_tag = ["--variable", "CI_COMMIT_TAG=v1.0.0", "--unset-variable", "CI_COMMIT_BRANCH"]
    assert pipeline_jobs(repo, *other_tag) == []  # a release of the template, not of the package


@pytest.mark.engine
def test_a_package_tag_tests_builds_and_uploads_the_package_with_twine(tmp_path):
    need_gitlab_ci_local()
    need(PYPI_SERVER, "pypiserver is not installed (re-run make .venv/bin/cookiecutter)")
    index = PrivateIndex(tmp_path / "nexus").start()
    try:
        repo = template_repo(tmp_path / "template")
        tag = f"package-v{PACKAGE_VERSION}"
        git("tag", tag, cwd=repo)
        pipeline = run_ci(repo, publish_variables(index), tag=tag)
        assert pipeline.returncode == 0, pipeline.output
        assert " passed" in pipeline.logs["package-tests"]
        assert index.files() == sorted([WHEEL, f"confiance_job-{PACKAGE_VERSION}.tar.gz"])
        assert f"Published confiance-job {PACKAGE_VERSION}" in pipeline.logs["publish-package"]
        # The jobs installed their tools through NEXUS_PYPI_URL, logged in (anonymous asks get 401).
        assert index.served("GET /simple/twine/", 303) and index.served("GET /simple/pytest/", 303)

        # What job repos do next: pip installs it from the index, with the credentials.
        target = tmp_path / "installed"
        install = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", target]
        run([*install, f"confiance-job=={PACKAGE_VERSION}"], env=clean_pip_env(PIP_INDEX_URL=index.simple_url()))
        assert (target / f"confiance_job-{PACKAGE_VERSION}.dist-info").is_dir()

        # The same tag's pipeline again (GitLab's "Retry"): nothing replaced, no failure.
        rerun = run_ci(repo, publish_variables(index), "publish-package", tag=tag)
        assert rerun.returncode == 0, rerun.output
        assert (
            f"confiance-job {PACKAGE_VERSION} is already published: nothing to upload." in rerun.logs["publish-package"]
        )

        printed = printed_by(pipeline) + printed_by(rerun) + index.log.read_text()
        assert leaked(index_secrets(index), printed) == []
        print(f"tag pipeline {pipeline.seconds:.1f} s, re-run of publish-package {rerun.seconds:.1f} s")
    finally:
        index.stop()


@pytest.mark.engine
@pytest.mark.parametrize(
    "tag, overrides, message",
    [
        (
            "package-v9.9.9",
            {},
            f'tag package-v9.9.9 says 9.9.9 but {INIT_FILE} has __version__ = "{PACKAGE_VERSION}"',
        ),
        ("package-1.0", {}, "tag 'package-1.0' is not a package release tag. Expected package-vMAJOR.MINOR.PATCH"),
        (f"package-v{PACKAGE_VERSION}", {"NEXUS_PASSWORD": None}, "CI variable NEXUS_PASSWORD is not set"),
        (f"package-v{PACKAGE_VERSION}", {"NEXUS_PASSWORD": "not-the-password"}, "cannot read what the index at"),
    ],
    ids=["not-the-package-version", "not-a-version", "no-password", "wrong-password"],
)
def test_a_wrong_tag_or_wrong_credentials_publish_nothing(tmp_path, tag, overrides, message):
    need_gitlab_ci_local()
    need(PYPI_SERVER, "pypiserver is not installed (re-run make .venv/bin/cookiecutter)")
    index = PrivateIndex(tmp_path / "nexus").start()
    try:
        repo = template_repo(tmp_path / "template")
        git("tag", tag, cwd=repo)
        pipeline = run_ci(repo, publish_variables(index, **overrides), "publish-package", tag=tag)
        assert pipeline.returncode != 0
        assert f"ERROR: {message}" in pipeline.logs["publish-package"]
        assert index.files() == []
        assert leaked(index_secrets(index), printed_by(pipeline)) == []
    finally:
        index.stop()
