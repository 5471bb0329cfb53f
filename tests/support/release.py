"""Pushing a release tag the way a user does, with the CI variables an admin sets.
(The `engines` and `gitlab` fixtures live in conftest.py.)"""

from support.builders import choose_builder
from support.gitlab import git, make_job_repo, run_tag_pipeline

DAGS_TOKEN = "glpat-Dags-T0ken-x9"


def ci_variables(registry, airflow_python, **overrides):
    """What an admin sets in GitLab > CI/CD variables, plus the test-only switches."""
    variables = {
        "NEXUS_USER": registry.user,
        "NEXUS_PASSWORD": registry.password,
        "AIRFLOW_DAGS_TOKEN": DAGS_TOKEN,
        "DOCKER_INSECURE_REGISTRY": "true",  # the stand-in registry speaks plain http on loopback
        "CONFIANCE_JOB_PYTHON": str(airflow_python),  # has Airflow and the package: no install from an index
    }
    variables.update(overrides)
    return {name: value for name, value in variables.items() if value is not None}


def release(repo, gitlab, registry, airflow_python, tag="v0.1.0", runner_env=None, **overrides):
    """Tag the repo and run its tag pipeline; `runner_env` is the environment of the runner (builders.py)."""
    git("tag", tag, cwd=repo)
    return run_tag_pipeline(repo, gitlab, tag, ci_variables(registry, airflow_python, **overrides), runner_env)


def job_repo(tmp_path, registry, name, builder="docker", **answers):
    """A job repo that builds its image with `builder` (IMAGE_BUILDER in its .gitlab-ci.yml)."""
    repo = make_job_repo(tmp_path / name, registry, project_name=name, **answers)
    if str(builder) != "docker":
        choose_builder(repo, str(builder))
        git("commit", "-q", "-am", f"Build the image with {builder}", cwd=repo)
    return repo
