"""A job repo takes the template's later changes with cruft, and keeps its own.

Everything runs for real, offline: the template is a git repository in a temporary
folder (this checkout's files as they are now), cookiecutter and cruft run as users
run them, each in its own process, so every bake renders the template it was given.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from confiance_job.rules import TOOLS
from support import ROOT
from support.commands import run
from support.gitlab import commit_all, component, conflicts, git
from support.template import bake, copy_template, edit

DAG_TEMPLATE = Path("{{cookiecutter.project_slug}}") / "dags" / "{{cookiecutter.project_slug}}.py"
MAIN_TEMPLATE = Path("{{cookiecutter.project_slug}}") / "main.py"
USER_CODE = '''    """Count the words of the dataset: the team's own code."""
    words = len(os.environ.get("DATASET", "").split())
    save_json(settings, "run.json", {"words": words})
'''
TEMPLATE_NOTE = "# Plumbing note from the template's next version.\n"


@pytest.fixture(scope="session")
def template_files():
    """The template's files as git would commit them now: tracked and new ones, from the working tree."""
    tracked = git("ls-files", "-z", cwd=ROOT).split("\0")
    new = git("ls-files", "-z", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    return sorted(path for path in set(tracked + new) if path and (ROOT / path).is_file())


@pytest.fixture
def template(tmp_path, template_files):
    """The template as a git repository of its own, one commit."""
    folder = copy_template(template_files, tmp_path / "confiance-job")
    commit_all(folder, "Template v1", init=True)
    return folder


def bake_with_cli(template, output_dir):
    """`cookiecutter --no-input <template>` as a user runs it: the repo and what it printed."""
    result = run(["cookiecutter", "--no-input", "-o", output_dir, template])
    return output_dir / "my-job", result.stdout


@pytest.fixture
def job_repo(template, tmp_path):
    """A job repo baked from the template and committed, as the next steps say."""
    repo, _ = bake_with_cli(template, tmp_path / "jobs")
    commit_all(repo, "Start my-job", init=True)
    return repo


def write_user_code(repo):
    """The user replaces the example step with their own code, and commits it."""
    main_py = repo / "main.py"
    text, replaced = re.subn(r"(def run\(settings\):\n)(?:    .*\n)+", rf"\g<1>{USER_CODE}", main_py.read_text())
    assert replaced == 1, "main.py has no `def run(settings):` step; the test needs updating"
    main_py.write_text(text)
    commit_all(repo, "My code")


def release_template_v2(template):
    """The template's next version: a new DAG default, and a change in main.py's plumbing."""
    edit(template / DAG_TEMPLATE, '"retries": 1,', '"retries": 2,')
    edit(template / MAIN_TEMPLATE, "# ---- Plumbing:", TEMPLATE_NOTE + "# ---- Plumbing:")
    commit_all(template, "Template v2: two retries")


def cruft(repo, *args, check=True):
    return run(["cruft", *args], cwd=repo, check=check)


def cruft_update(repo):
    return cruft(repo, "update", "--skip-apply-ask", "--allow-untracked-files")


def ci_template_report(repo):
    """The test job's step that reports template updates (from the shared jobs), run as GitLab runs a script
    (bash -eo pipefail)."""
    job_ci = (repo / ".gitlab-ci.yml").read_text()
    assert "- !reference [.confiance-template-report, script]" in job_ci
    (report,) = component("docker-build-nexus")[1][".confiance-template-report"]["script"]
    env = {**os.environ, "CI_SERVER_HOST": "git.example.invalid", "CI_JOB_TOKEN": "not-a-token"}
    result = run(["bash", "-eo", "pipefail", "-c", report], cwd=repo, env=env)  # fails on a non-zero exit
    return result.stdout + result.stderr


def cruft_state(repo):
    return json.loads((repo / ".cruft.json").read_text())


def test_cruft_update_brings_the_template_change_and_keeps_the_users_code(template, job_repo):
    write_user_code(job_repo)
    release_template_v2(template)
    assert cruft(job_repo, "check", check=False).returncode == 1  # the template moved on
    before = (job_repo / ".cruft.json").read_text()

    users_main = (job_repo / "main.py").read_text()

    cruft_update(job_repo)

    assert '"retries": 2,' in (job_repo / "dags" / "my-job.py").read_text()
    # main.py is the user's: the template's change to it stays out, so their code never gets conflict markers.
    assert (job_repo / "main.py").read_text() == users_main and USER_CODE in users_main
    assert conflicts(job_repo) == []
    cruft(job_repo, "check")
    # The hook wrote .cruft.json exactly as cruft does: the update changed nothing but the commit.
    old_commit, new_commit = json.loads(before)["commit"], git("rev-parse", "HEAD", cwd=template)
    assert (job_repo / ".cruft.json").read_text() == before.replace(old_commit, new_commit)


def test_cruft_update_moves_the_shared_jobs_to_the_templates_new_major(template, job_repo):
    """The platform releases version 2 of the shared jobs and the template follows: the job repo's
    .gitlab-ci.yml includes @2 after `cruft update`, its own edits kept."""
    ci = job_repo / ".gitlab-ci.yml"
    edit(ci, 'image_builder: "docker"', 'image_builder: "buildah"')  # the repo owner's choice
    commit_all(job_repo, "Build with buildah")
    edit(
        template / "package" / "src" / "confiance_job" / "rules.py",
        'SHARED_CI_VERSION = "1"',
        'SHARED_CI_VERSION = "2"',
    )
    commit_all(template, "Template: version 2 of the shared jobs")

    cruft_update(job_repo)

    includes = re.findall(r"component: (\S+)", ci.read_text())
    assert [include.rpartition("@")[2] for include in includes] == ["2", "2"]
    assert 'image_builder: "buildah"' in ci.read_text()
    assert conflicts(job_repo) == []


def test_the_update_as_the_readme_runs_it_asks_and_a_yes_applies_it(template, job_repo):
    """`.venv/bin/cruft update`, answered at its prompt as a person would (the other tests skip the prompt)."""
    write_user_code(job_repo)
    release_template_v2(template)
    answered = subprocess.run(["cruft", "update"], cwd=job_repo, input="y\n", capture_output=True, text=True)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert "Apply diff and update? [y]:" in answered.stdout and "Good work!" in answered.stdout
    assert '"retries": 2,' in (job_repo / "dags" / "my-job.py").read_text()


def test_the_ci_test_job_reports_a_template_that_moved_on_and_never_fails(template, job_repo, tmp_path):
    assert "SUCCESS" in ci_template_report(job_repo)
    release_template_v2(template)
    report = ci_template_report(job_repo)
    assert "out of date" in report and "the template has moved on" in report
    template.rename(tmp_path / "moved-away")  # out of CI's reach: still a report, not a failure
    assert "Not failing" in ci_template_report(job_repo)


def test_a_change_to_the_same_lines_keeps_both_versions_for_the_user_to_choose(template, job_repo):
    edit(job_repo / "dags" / "my-job.py", '"retries": 1,', '"retries": 5,  # our job is flaky')
    commit_all(job_repo, "More retries")
    release_template_v2(template)

    cruft_update(job_repo)  # says "Good work!" even so: the README tells users to look at git status

    assert git("diff", "--name-only", "--diff-filter=U", cwd=job_repo) == "dags/my-job.py"
    dag = (job_repo / "dags" / "my-job.py").read_text()
    assert '"retries": 5,  # our job is flaky' in dag and '"retries": 2,' in dag and "<<<<<<<" in dag
    assert TEMPLATE_NOTE not in (job_repo / "main.py").read_text()  # main.py is the user's, never merged


def test_files_that_are_the_users_are_never_updated(template, job_repo):
    users_files = {
        "main.py": "STEPS = {}\n\n\ndef main(argv=None):\n    return 0\n",
        "requirements.txt": "pandas==2.2.3\n",
        "tests/test_main.py": "def test_my_code():\n    assert True\n",
        "tests/test_more.py": "def test_more():\n    assert True\n",
    }
    for name, text in users_files.items():
        (job_repo / name).write_text(text)
    commit_all(job_repo, "My requirements and tests")
    job_template = template / "{{cookiecutter.project_slug}}"
    edit(job_template / "requirements.txt", "# The packages", "# All the packages")
    edit(job_template / "tests" / "test_main.py", '"""Tests of main.py:', '"""The tests of main.py:')
    edit(job_template / "main.py", "# ---- Plumbing:", TEMPLATE_NOTE + "# ---- Plumbing:")
    commit_all(template, "Template v2: wording")

    cruft_update(job_repo)

    assert {name: (job_repo / name).read_text() for name in users_files} == users_files
    assert git("status", "--porcelain", cwd=job_repo) == "M .cruft.json"  # only the new commit recorded


def test_job_repos_pin_the_cruft_these_tests_run(tmp_path):
    def cruft_pin(requirements):
        return [line for line in requirements.read_text().splitlines() if line.startswith("cruft==")]

    job_requirements = bake(tmp_path) / "requirements-dev.txt"
    assert cruft_pin(job_requirements) == [f"cruft=={TOOLS['cruft']}"]  # the pin of the template's own venv
    # cruft's prompt breaks with typer 0.29: both pin below it.
    assert "typer<0.29" in job_requirements.read_text() and "typer==0.28" in (ROOT / "requirements-dev.txt").read_text()


def test_a_plain_copy_of_the_template_bakes_and_says_how_to_turn_updates_on(template_files, tmp_path):
    copy = copy_template(template_files, tmp_path / "downloaded")  # a zip, a copy: no git
    repo, printed = bake_with_cli(copy, tmp_path / "jobs")
    assert not (repo / ".cruft.json").exists()
    assert "Template updates are off" in printed and "cruft link <git URL of the template>" in printed
    assert ci_template_report(repo) == ""  # nothing to check, nothing said


@pytest.fixture
def published(template, tmp_path):
    """The template pushed to a server (a bare repository here), and a user's clone of it."""
    server = tmp_path / "server" / "confiance-job.git"
    git("clone", "-q", "--bare", template, server)
    clone = tmp_path / "clone"
    git("clone", "-q", server, clone)
    return server, clone


def test_a_clone_records_the_repository_it_came_from_without_credentials(published, tmp_path):
    server, clone = published
    repo, _ = bake_with_cli(clone, tmp_path / "from-clone")
    assert cruft_state(repo)["template"] == str(server)  # what CI and teammates can reach
    cruft(repo, "check")
    git("remote", "set-url", "origin", "https://jane:glpat-secret@git.example.invalid/confiance-job.git", cwd=clone)
    repo, _ = bake_with_cli(clone, tmp_path / "with-token")
    assert cruft_state(repo)["template"] == "https://git.example.invalid/confiance-job.git"
    assert "glpat-secret" not in (repo / ".cruft.json").read_text()


def test_a_clone_with_unpushed_commits_records_its_own_path(published, tmp_path):
    _, clone = published
    edit(clone / DAG_TEMPLATE, '"retries": 1,', '"retries": 2,')
    commit_all(clone, "Not pushed yet")
    repo, _ = bake_with_cli(clone, tmp_path / "jobs")
    assert cruft_state(repo)["template"] == str(clone)  # the server does not have this commit
    assert cruft_state(repo)["commit"] == git("rev-parse", "HEAD", cwd=clone)


def test_a_repo_made_inside_the_template_is_not_a_change_of_the_template(template):
    printed = run(["cookiecutter", "--no-input", "."], cwd=template).stdout  # as `make job` runs it
    assert cruft_state(template / "my-job")["template"] == str(template)
    assert "uncommitted changes" not in printed


def test_uncommitted_template_changes_are_baked_and_reported(template, tmp_path):
    edit(template / DAG_TEMPLATE, '"retries": 1,', '"retries": 2,')  # work in progress on the template
    repo, printed = bake_with_cli(template, tmp_path / "jobs")
    assert '"retries": 2,' in (repo / "dags" / "my-job.py").read_text()
    assert cruft_state(repo)["commit"] == git("rev-parse", "HEAD", cwd=template)
    assert "the template had uncommitted changes" in printed


def test_a_new_version_of_the_platform_package_reaches_the_job_repo(template, job_repo):
    version_file = template / "package" / "src" / "confiance_job" / "__init__.py"
    old = re.search(r'__version__ = "([^"]+)"', version_file.read_text()).group(1)
    edit(version_file, f'__version__ = "{old}"', '__version__ = "99.0.0"')
    commit_all(template, "Package 99.0.0")
    cruft_update(job_repo)
    assert "confiance-job==99.0.0" in (job_repo / "requirements-dev.txt").read_text()
