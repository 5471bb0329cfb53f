"""`git tag v0.1.0 && git push --tags`, for real: the generated .gitlab-ci.yml runs
in gitlab-ci-local with the shared jobs from the pipelines project, builds with a
real builder (Docker, or buildah with no daemon), pushes to a registry with
authentication, and syncs the DAG into the airflow-dags repository."""

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.builders import choose_builder
from support.commands import run
from support.engines import Registry, docker, free_port
from support.gitlab import FakeGitLab, git, gitlab_ci_local, make_job_repo, need_gitlab_ci_local, run_tag_pipeline
from support.leaks import image_leaks, secret_forms
from support.release import DAGS_TOKEN, ci_variables, job_repo, release

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engines")]

CA_CERTIFICATES = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))


def test_a_release_tag_pushes_the_image_and_syncs_the_dag(engines, gitlab, tmp_path, builder):
    registry, airflow_python = engines
    name = f"release-story-{builder}"
    # A corporate user: the image must trust the company CA to reach the package index.
    repo = job_repo(
        tmp_path,
        registry,
        name,
        builder,
        steps="prepare,train",
        extra_ca_certificates=True,
        pypi_index_url="https://pypi.org/simple",
    )
    for certificate in CA_CERTIFICATES:
        shutil.copy(certificate, repo / "certs")
    (repo / "requirements.txt").write_text("six==1.16.0\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "Add the company CA and a dependency", cwd=repo)

    # buildah on a runner that allows vfs storage only: the slowest, most restricted case.
    pipeline = release(repo, gitlab, registry, airflow_python, runner_env=builder.runner_env(repo, driver="vfs"))

    assert pipeline.returncode == 0, pipeline.output
    assert f"Building with {builder}" in pipeline.logs["nexus-image"]
    image = f"{registry.host}/confiance/{name}"
    assert registry.tags(f"confiance/{name}") == ["0.1.0", "latest"]
    short_sha = git("rev-parse", "--short=8", "HEAD", cwd=repo)
    assert gitlab.dags_log()[0] == f"{name} v0.1.0 ({short_sha})"
    synced = gitlab.dags_file(f"{name}.py")
    assert 'DEFAULT_IMAGE_TAG = "0.1.0"' in synced

    # The synced DAG loads in Airflow, with the pushed version as its default image tag.
    dag_copy = tmp_path / "synced" / f"{name}.py"
    dag_copy.parent.mkdir()
    dag_copy.write_text(synced)
    loaded = run([airflow_python, "-c", LOAD_SYNCED_DAG, dag_copy]).stdout
    assert loaded.strip().splitlines()[-1] == f"{name} 0.1.0 prepare,train"

    # The image comes back from the registry and runs the job's steps.
    docker("image", "rm", f"{image}:0.1.0", f"{image}:latest", check=False)  # built here by Docker only
    docker("pull", "--quiet", f"{image}:0.1.0", env=registry.docker_login(tmp_path / "docker-config"))
    step = docker("run", "--rm", f"{image}:0.1.0", "bash", "-c", "python main.py prepare && python main.py train")
    assert "step prepare done" in step.stdout and "step train done" in step.stdout
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", f"{image}:0.1.0").stdout
    assert f'"org.opencontainers.image.revision":"{git("rev-parse", "HEAD", cwd=repo)}"' in labels
    assert '"org.opencontainers.image.version":"0.1.0"' in labels

    # No credential in the image or in what the pipeline printed.
    secrets = secret_forms(registry.password, DAGS_TOKEN, basic_auth=[("oauth2", DAGS_TOKEN)])
    assert image_leaks(f"{image}:0.1.0", secrets, tmp_path) == []
    everything_printed = pipeline.output + "".join(pipeline.logs.values())
    assert [secret for secret in secrets if secret in everything_printed] == []
    if str(builder) == "buildah":
        assert "buildah storage: vfs" in pipeline.logs["nexus-image"]
    print(f"{builder} timings: {pipeline.job_seconds} total {pipeline.seconds:.1f} s; {job_step_times(pipeline)}")


LOAD_SYNCED_DAG = """
import sys
from confiance_job.dags import load_dag
dag = load_dag(sys.argv[1])
print(dag.dag_id, dag.params["image_tag"], ",".join(task.task_id for task in dag.tasks))
"""


def job_step_times(pipeline):
    log = pipeline.logs.get("nexus-image", "")
    return dict(re.findall(r"(Built|Pushed) \S+ in (\d+) s", log))


def test_a_code_only_change_rebuilds_from_the_previous_image(engines, gitlab, tmp_path, builder):
    registry, airflow_python = engines
    name = f"cached-build-{builder}"
    repo = job_repo(tmp_path, registry, name, builder)
    first = release(repo, gitlab, registry, airflow_python, tag="v0.1.0", runner_env=builder.runner_env(repo))
    assert first.returncode == 0, first.output
    main_py = repo / "main.py"
    main_py.write_text(main_py.read_text() + "\n# A code-only change.\n")
    git("commit", "-q", "-am", "Change the code only", cwd=repo)
    # A fresh CI runner: only the registry remembers the last build.
    image = f"{registry.host}/confiance/{name}"
    docker("image", "rm", f"{image}:0.1.0", f"{image}:latest", check=False)
    docker("builder", "prune", "--force")
    second = release(repo, gitlab, registry, airflow_python, tag="v0.1.1", runner_env=builder.runner_env(repo))
    assert second.returncode == 0, second.output
    assert dependencies_step_was_cached(second.logs["nexus-image"], image, str(builder))
    assert registry.tags(f"confiance/{name}") == ["0.1.0", "0.1.1", "latest"]
    print(f"{builder}: first build {job_step_times(first)}, code-only rebuild {job_step_times(second)}")


def dependencies_step_was_cached(log, image, builder):
    """True when the build took the dependencies layer from the registry's cache instead of installing."""
    if builder == "docker":
        assert re.search(rf"importing cache manifest from {re.escape(image)}:latest", log), log
        step = re.search(r"#(\d+) \[(?:\S+ )?\d/\d\] RUN --mount=type=secret,id=pip_conf", log).group(1)
        return f"#{step} CACHED" in log
    # buildah prints the step, then where its layer came from, before the next step.
    after_step = log.split("RUN --mount=type=secret,id=pip_conf", 1)[1].split("STEP ", 1)[0]
    return f"Cache pulled from remote {image}/cache:" in after_step and "Using cache" in after_step


def test_a_tag_that_is_not_semver_stops_at_the_first_job(engines, gitlab, tmp_path):
    registry, airflow_python = engines
    repo = job_repo(tmp_path, registry, "bad-tag")
    pipeline = release(repo, gitlab, registry, airflow_python, tag="release-1")
    assert pipeline.returncode != 0
    log = pipeline.logs["release-check"]
    assert "tag 'release-1' is not a release tag. Expected vMAJOR.MINOR.PATCH, e.g. v0.2.0" in log
    assert set(pipeline.logs) == {"release-check"}  # nothing built, pushed or synced
    assert registry.tags("confiance/bad-tag") == []
    assert gitlab.dags_log() == ["Initial commit"]


@pytest.mark.parametrize(
    "broken, job, message",
    [
        ({"NEXUS_PASSWORD": None}, "release-check", "CI variable NEXUS_PASSWORD is not set"),
        ({"AIRFLOW_DAGS_TOKEN": None}, "airflow-dag-sync", "CI variable AIRFLOW_DAGS_TOKEN is not set"),
    ],
    ids=["no-registry-password", "no-dags-token"],
)
def test_missing_credentials_fail_clearly(engines, gitlab, tmp_path, broken, job, message):
    registry, airflow_python = engines
    repo = job_repo(tmp_path, registry, "creds-" + next(iter(broken)).lower().replace("_", "-"))
    pipeline = release(repo, gitlab, registry, airflow_python, **broken)
    assert pipeline.returncode != 0
    assert message in pipeline.logs[job]
    assert gitlab.dags_log() == ["Initial commit"]
    if job != "airflow-dag-sync":
        assert registry.tags(f"confiance/{repo.name}") == []


def test_a_wrong_registry_password_fails_clearly(engines, gitlab, tmp_path, builder):
    registry, airflow_python = engines
    repo = job_repo(tmp_path, registry, f"wrong-password-{builder}", builder)
    runner_env = builder.runner_env(repo)
    pipeline = release(repo, gitlab, registry, airflow_python, runner_env=runner_env, NEXUS_PASSWORD="not-it")
    assert pipeline.returncode != 0
    assert f"cannot log in to {registry.host} as {registry.user}" in pipeline.logs["nexus-image"]
    assert gitlab.dags_log() == ["Initial commit"]
    assert registry.tags(f"confiance/{repo.name}") == []


def test_a_registry_that_is_down_fails_clearly(engines, gitlab, tmp_path, builder):
    registry, airflow_python = engines
    down = Registry(tmp_path / "down")  # configured, never started
    down.host = f"127.0.0.1:{free_port()}"
    repo = make_job_repo(tmp_path / "down-job", down, project_name=f"registry-down-{builder}")
    if str(builder) != "docker":
        choose_builder(repo, str(builder))
        git("commit", "-q", "-am", "Build with buildah", cwd=repo)
    pipeline = release(repo, gitlab, registry, airflow_python, runner_env=builder.runner_env(repo))
    assert pipeline.returncode != 0
    assert f"cannot log in to {down.host}" in pipeline.logs["nexus-image"]
    assert "check that the registry is up" in pipeline.logs["nexus-image"]
    assert gitlab.dags_log() == ["Initial commit"]


def test_a_dag_that_does_not_import_is_never_synced(engines, gitlab, tmp_path):
    registry, airflow_python = engines
    repo = job_repo(tmp_path, registry, "broken-dag")
    dag = repo / "dags" / "broken-dag.py"
    dag.write_text(dag.read_text().replace("image_pull_policy=", "image_pul_policy="))
    git("commit", "-q", "-am", "Typo in the DAG", cwd=repo)
    pipeline = release(repo, gitlab, registry, airflow_python)
    assert pipeline.returncode != 0
    assert "airflow-dag-sync" in pipeline.logs, pipeline.output  # the image was pushed; the sync refused
    log = pipeline.logs["airflow-dag-sync"]
    assert "image_pul_policy" in log
    assert "dags/broken-dag.py does not import in Airflow; nothing was synced" in log
    assert gitlab.dags_log() == ["Initial commit"]


def test_a_release_is_never_overwritten_and_a_rerun_changes_nothing(engines, gitlab, tmp_path, builder):
    registry, airflow_python = engines
    name = f"rerun-{builder}"
    repo = job_repo(tmp_path, registry, name, builder)
    assert release(repo, gitlab, registry, airflow_python, runner_env=builder.runner_env(repo)).returncode == 0
    digest = registry.digest(f"confiance/{name}", "0.1.0")
    synced_log = gitlab.dags_log()

    # The same tag again (GitLab's "Run pipeline" on the tag), on another runner: nothing rebuilt, no new commit.
    variables = ci_variables(registry, airflow_python)
    rerun = run_tag_pipeline(repo, gitlab, "v0.1.0", variables, builder.runner_env(repo))
    assert rerun.returncode == 0, rerun.output
    assert "was already built from this commit: nothing to build" in rerun.logs["nexus-image"]
    assert f"{name}.py in" in rerun.logs["airflow-dag-sync"] and "nothing to commit" in rerun.logs["airflow-dag-sync"]
    assert gitlab.dags_log() == synced_log

    # v0.1.0 moved to another commit: refused, the released image stays.
    git("commit", "-q", "--allow-empty", "-m", "Something else", cwd=repo)
    git("tag", "-d", "v0.1.0", cwd=repo)
    retag = release(repo, gitlab, registry, airflow_python, runner_env=builder.runner_env(repo))
    assert retag.returncode != 0
    assert f"{name}:0.1.0 already exists (built from commit" in retag.logs["nexus-image"]
    assert "a release is never overwritten" in retag.logs["nexus-image"]
    assert registry.digest(f"confiance/{name}", "0.1.0") == digest
    assert gitlab.dags_log() == synced_log


def test_concurrent_releases_all_land_their_dag(engines, gitlab, tmp_path):
    registry, airflow_python = engines
    names = [f"team-{letter}" for letter in "abcde"]
    repos = [job_repo(tmp_path, registry, name) for name in names]
    for repo in repos:
        git("tag", "v1.0.0", cwd=repo)
    with ThreadPoolExecutor(len(repos)) as pool:
        pipelines = list(
            pool.map(lambda r: run_tag_pipeline(r, gitlab, "v1.0.0", ci_variables(registry, airflow_python)), repos)
        )
    for pipeline in pipelines:
        assert pipeline.returncode == 0, pipeline.output
    for name in names:
        assert 'DEFAULT_IMAGE_TAG = "1.0.0"' in gitlab.dags_file(f"{name}.py")
    log = gitlab.dags_log()
    assert len(log) == len(names) + 1
    assert all(sum(line.startswith(f"{name} v1.0.0 (") for line in log) == 1 for name in names)
    assert gitlab.dags_history_is_linear()
    attempts = [int(re.search(r"push attempt (\d+)", p.logs["airflow-dag-sync"]).group(1)) for p in pipelines]
    print(f"push attempts per pipeline: {attempts}; wall times: {[round(p.seconds) for p in pipelines]} s")


def test_the_synced_dag_does_not_touch_other_files(engines, gitlab, tmp_path):
    registry, airflow_python = engines
    repo = job_repo(tmp_path, registry, "neighbour", dags_folder="jobs")
    pipeline = release(repo, gitlab, registry, airflow_python)
    assert pipeline.returncode == 0, pipeline.output
    changed = git(
        "show", "--name-only", "--format=", "master", cwd=gitlab.bare_repo("confianceai/ec_1/infra/airflow-dags")
    )
    assert changed.splitlines() == ["jobs/neighbour.py"]


def pipeline_jobs(repo, fake_gitlab, *selection):
    """{job: when} for the jobs gitlab-ci-local would put in a pipeline, after rules."""
    env = {**os.environ, **fake_gitlab.git_env()}
    listed = gitlab_ci_local(["--list-json", "--fetch-includes", *selection], repo, env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    jobs = json.loads(listed.stdout)
    return {job["name"]: job["when"] for job in jobs if job["when"] != "never"}


def test_branch_pipelines_test_and_offer_manual_jobs_and_tag_pipelines_release(tmp_path):
    need_gitlab_ci_local()
    templates_only = FakeGitLab(tmp_path / "gitlab")
    templates_only.publish_ci_templates()
    repo = make_job_repo(tmp_path / "jobs", Registry(tmp_path / "unused"), project_name="lists")
    default_branch = pipeline_jobs(repo, templates_only)  # gitlab-ci-local takes main as the default branch
    assert default_branch == {"test": "on_success", "nexus-dev-image": "manual", "airflow-dag-retire": "manual"}
    git("checkout", "-q", "-b", "feature", cwd=repo)
    feature = pipeline_jobs(repo, templates_only)
    assert feature == {"test": "on_success", "nexus-dev-image": "manual"}
    tag = ["--variable", "CI_COMMIT_TAG=v0.1.0", "--unset-variable", "CI_COMMIT_BRANCH"]
    assert sorted(pipeline_jobs(repo, templates_only, *tag)) == ["airflow-dag-sync", "nexus-image", "release-check"]


def test_the_image_builds_without_any_secret_from_public_pypi(engines, tmp_path):
    """`make build` on a laptop: no pip.conf secret, packages from the public index."""
    registry, _ = engines
    repo = make_job_repo(tmp_path / "laptop", registry, project_name="laptop-build", extra_ca_certificates=True)
    for certificate in CA_CERTIFICATES:  # this network inspects TLS, as many company networks do
        shutil.copy(certificate, repo / "certs")
    (repo / "requirements.txt").write_text("six==1.16.0\n")
    docker("build", "--quiet", "--tag", "laptop-build:dev", repo, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    version = docker("run", "--rm", "laptop-build:dev", "python", "-c", "import six; print(six.__version__)")
    assert version.stdout.strip() == "1.16.0"
    assert docker("run", "--rm", "laptop-build:dev", "id", "-u").stdout.strip() == "1000"  # not root
