"""The shared CI jobs as GitLab CI/CD components: typed inputs, released by tag, included by job
repos at a major version. Pipelines run in gitlab-ci-local against the stand-in shared project."""

import re

import pytest
import yaml
from confiance_job import answers
from confiance_job.rules import SHARED_CI_VERSION, VERSION
from support.commands import run
from support.engines import Registry
from support.gitlab import (
    CI_TEMPLATES,
    TEMPLATES_PROJECT,
    FakeGitLab,
    GitLabLoader,
    component,
    git,
    make_job_repo,
    need_gitlab_ci_local,
    run_tag_pipeline,
    shared_ci_release,
)
from support.release import job_repo, release
from support.template import edit

COMPONENTS = ["docker-build-nexus", "airflow-dag-sync"]
GITLAB_SCHEMA = ["check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci"]


def test_each_component_and_the_shared_projects_ci_are_valid_gitlab_ci(tmp_path):
    documents = [CI_TEMPLATES / ".gitlab-ci.yml"]
    for name in COMPONENTS:  # a component is two YAML documents: its spec, then its jobs
        header, jobs = (CI_TEMPLATES / "templates" / f"{name}.yml").read_text().split("\n---\n")
        for part, text in (("spec", header), ("jobs", jobs)):
            documents.append(tmp_path / f"{name}-{part}.yml")
            documents[-1].write_text(text)
    run([*GITLAB_SCHEMA, *documents])


def test_every_input_says_what_it_is_and_a_number_is_typed():
    for name in COMPONENTS:
        inputs, _ = component(name)
        assert [key for key, spec in inputs.items() if not spec.get("description")] == [], name
    attempts = component("airflow-dag-sync")[0]["dag_sync_attempts"]
    assert (attempts["type"], attempts["default"]) == ("number", 8)


def test_the_components_rules_are_the_answers_rules():
    """An input with the form of an answer takes what the answer's rule takes: GitLab reads the YAML,
    the template's hook reads answers.py, and the two spellings of one rule are held equal here."""
    same_rule = {
        ("docker-build-nexus", "project_name"): answers.DNS_LABEL,
        ("docker-build-nexus", "docker_registry"): answers.HOST_PORT,
        ("docker-build-nexus", "docker_repository"): answers.REPOSITORY,
        ("airflow-dag-sync", "dags_branch"): answers.GIT_REF,
        ("airflow-dag-sync", "airflow_version"): VERSION,
    }
    for (name, input_name), rule in same_rule.items():
        assert component(name)[0][input_name]["regex"] == rule.pattern, (name, input_name)


def test_job_repos_include_the_major_version_of_the_newest_release():
    assert shared_ci_release().split(".")[0] == SHARED_CI_VERSION


def release_1_1_and_2_0(gitlab):
    """A fix within version 1 (release-check says which release it is), then a 2.0.0 that renames an input
    and breaks the image job: what the platform team may publish after the job repo was made."""
    build = "templates/docker-build-nexus.yml"
    gitlab.release_ci_templates(
        "1.1.0",
        lambda folder: edit(
            folder / build, '    - echo "Releasing', '    - echo "Shared jobs 1.1.0"\n    - echo "Releasing'
        ),
    )

    def break_in_2_0(folder):
        edit(folder / build, "    project_name:\n", "    image_name:\n")
        edit(folder / build, "$[[ inputs.project_name ]]", "$[[ inputs.image_name ]]")
        edit(
            folder / build,
            "nexus-image:\n  extends: .confiance-image-job\n",
            "nexus-image:\n  extends: .confiance-image-job\n  before_script: [exit 3]\n",
        )

    gitlab.release_ci_templates("2.0.0", break_in_2_0)


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_a_repo_on_version_1_takes_its_fixes_and_keeps_releasing_when_2_0_changes_the_jobs(engines, gitlab, tmp_path):
    registry, airflow_python = engines
    release_1_1_and_2_0(gitlab)
    repo = job_repo(tmp_path, registry, "pinned-one")

    pipeline = release(repo, gitlab, registry, airflow_python)

    assert pipeline.returncode == 0, pipeline.output
    assert "Shared jobs 1.1.0" in pipeline.logs["release-check"]  # @1 is the newest 1.x.y
    assert registry.tags("confiance/pinned-one") == ["0.1.0", "latest"]
    assert gitlab.dags_log()[0].startswith("pinned-one v0.1.0 (")

    # Moving both includes to @2 without following its changes: GitLab refuses the pipeline, naming the input.
    edit(repo / ".gitlab-ci.yml", f"@{SHARED_CI_VERSION}\n", "@2\n")
    assert (repo / ".gitlab-ci.yml").read_text().count("@2\n") == 2
    git("commit", "-q", "-am", "Use version 2 of the shared jobs", cwd=repo)
    moved = release(repo, gitlab, registry, airflow_python, tag="v0.2.0")
    assert moved.returncode != 0
    assert "`image_name` input: required value has not been provided" in moved.output
    assert moved.logs == {}  # no job ran
    assert registry.tags("confiance/pinned-one") == ["0.1.0", "latest"]


@pytest.mark.parametrize(
    "component_name, line, refusal",
    [
        ("airflow-dag-sync", 'dag_sync_attempts: "eight"', "`dag_sync_attempts` input: provided value is not a number"),
        ("docker-build-nexus", 'image_builder: "kaniko"', "`kaniko` cannot be used because it is not in the list"),
        (
            "docker-build-nexus",
            'docker_registry: "https://repo.irtsysx.fr"',
            "`https://repo.irtsysx.fr` does not match",
        ),
    ],
)
def test_a_wrong_input_is_refused_before_any_job_runs(tmp_path, component_name, line, refusal):
    need_gitlab_ci_local()
    gitlab = FakeGitLab.with_shared_projects(tmp_path / "gitlab")
    repo = make_job_repo(tmp_path / "jobs", Registry(tmp_path / "unused"), project_name="wrong-input")
    name = line.partition(":")[0]
    ci = repo / ".gitlab-ci.yml"
    text = ci.read_text()
    if f"      {name}:" in text:
        text = re.sub(rf"^      {name}: .*$", f"      {line}", text, count=1, flags=re.M)
    else:
        anchor = f"/{component_name}@{SHARED_CI_VERSION}\n    inputs:\n"
        text = text.replace(anchor, f"{anchor}      {line}\n")
    assert f"      {line}\n" in text
    ci.write_text(text)
    git("commit", "-q", "-am", "A wrong input", cwd=repo)

    pipeline = run_tag_pipeline(repo, gitlab, "v0.1.0", {"NEXUS_USER": "u", "NEXUS_PASSWORD": "p"})

    assert pipeline.returncode != 0
    assert refusal in pipeline.output
    assert pipeline.logs == {}


def older_gitlab_includes():
    """The include block README.md gives for GitLab older than 17.0 (include: project: with inputs)."""
    readme = (CI_TEMPLATES / "README.md").read_text()
    section = readme.split("## GitLab older than 17.0", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return yaml.safe_load(block)["include"]


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_on_gitlab_older_than_17_the_project_include_with_inputs_releases(engines, gitlab, tmp_path):
    registry, airflow_python = engines
    repo = job_repo(tmp_path, registry, "older-gitlab")
    ci = repo / ".gitlab-ci.yml"
    generated = yaml.load(ci.read_text(), GitLabLoader)["include"]
    documented = older_gitlab_includes()
    assert [entry["file"] for entry in documented] == [f"templates/{name}.yml" for name in COMPONENTS]
    assert {entry["project"] for entry in documented} == {TEMPLATES_PROJECT}
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", entry["ref"]) for entry in documented)  # a release, never a branch
    includes = [  # the README's form, with this repo's inputs, at the newest release
        {**entry, "ref": shared_ci_release(), "inputs": made["inputs"]}
        for entry, made in zip(documented, generated, strict=True)
    ]
    text = ci.read_text()
    start, end = text.index("include:\n"), text.index("\ntest:\n")
    ci.write_text(text[:start] + yaml.safe_dump({"include": includes}, sort_keys=False) + text[end:])
    git("commit", "-q", "-am", "Include the shared jobs as GitLab 16 does", cwd=repo)

    pipeline = release(repo, gitlab, registry, airflow_python)

    assert pipeline.returncode == 0, pipeline.output
    assert f"downloaded {TEMPLATES_PROJECT} {shared_ci_release()} templates/docker-build-nexus.yml" in pipeline.output
    assert registry.tags("confiance/older-gitlab") == ["0.1.0", "latest"]
    assert gitlab.dags_file("older-gitlab.py").count('DEFAULT_IMAGE_TAG = "0.1.0"') == 1
