"""Changing a job after it was generated: each change is the one command the job repo's README gives,
run as written with real git and cruft, and the user's main.py and requirements.txt come out untouched.

The job repo is baked from a committed copy of the template (so .cruft.json records a commit), then the
user replaces main.py with code of their own that looks nothing like the template's example.
"""

import ast
import os
import re
import shlex
import sys

import pytest
from support import ROOT
from support.commands import run
from support.gitlab import ci_variables, commit_all, conflicts, git
from support.template import copy_template
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

sys.path.insert(0, str(ROOT / "package" / "src"))
from confiance_job.sync import OWNER_HEADER  # noqa: E402  (the header every synced DAG file starts with)

STEPS = "prepare,train"
STEP_RESOURCES = "train: memory=8Gi/16Gi"
DEFAULT_RESOURCES = {"cpu": ["1", "2"], "memory": ["2Gi", "4Gi"], "gpus": 0}
GITLAB_PROJECT = "confianceai/retail/my-job"
USERS_REQUIREMENTS = "scikit-learn==1.5.2\npandas==2.2.3\n"
USERS_MAIN = '''"""Churn model of the retail team: clean the weekly extract, fit a threshold on monthly spend."""

from __future__ import annotations

import argparse
import csv
import os
import pickle
import sys
from pathlib import Path


def read_customers(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def keep(settings, name: str, value) -> None:
    if not settings.dry_run:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        (settings.run_dir / name).write_bytes(pickle.dumps(value))


def prepare(settings) -> None:
    """Drop customers with no tenure."""
    keep(settings, "customers.pkl", [r for r in read_customers(settings.data_dir / "customers.csv") if r["tenure"]])


def train(settings) -> None:
    rows = pickle.loads((settings.run_dir / "customers.pkl").read_bytes())
    keep(settings, "model.pkl", {"threshold": sorted(r["spend"] for r in rows)[len(rows) // 2] if rows else 0.0})


STEPS = {"prepare": prepare, "train": train}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "data")))
    parser.add_argument("--run-dir", type=Path, default=os.environ.get("RUN_DIR"))
    parser.add_argument("--run-id", default=os.environ.get("RUN_ID", "local"))
    parser.add_argument("--dry-run", action="store_true")
    settings = parser.parse_args(argv)
    settings.run_dir = settings.run_dir or settings.data_dir / "runs" / settings.run_id
    try:
        STEPS[settings.step](settings)
    except Exception as error:
        print(f"step {settings.step} failed: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The template as it is in this checkout, committed in a repository of its own (once for the module)."""
    tracked = git("ls-files", "-z", cwd=ROOT).split("\0")
    new = git("ls-files", "-z", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    files = sorted(path for path in set(tracked + new) if path and (ROOT / path).is_file())
    folder = copy_template(files, tmp_path_factory.mktemp("template") / "confiance-job")
    commit_all(folder, "Template", init=True)
    return folder


@pytest.fixture
def job_repo(template, tmp_path):
    """A two-step job baked from the template and committed, then the user's own main.py and packages."""
    answers = [f"steps={STEPS}", f"step_resources={STEP_RESOURCES}"]
    run(["cookiecutter", "--no-input", "-o", tmp_path, template, *answers])
    repo = tmp_path / "my-job"
    commit_all(repo, "Start my-job", init=True)
    (repo / "main.py").write_text(USERS_MAIN)
    (repo / "requirements.txt").write_text(USERS_REQUIREMENTS)
    commit_all(repo, "Our churn model")
    return repo


def readme_commands(repo):
    """The README's "Change the job" commands, each under the comment that says what it does."""
    section = re.search(r"^## Change the job\n(.*?)^## ", (repo / "README.md").read_text(), re.S | re.M)
    assert section, "the job repo's README has no 'Change the job' section"
    commands, said = {}, None
    for line in section.group(1).splitlines():
        line = line.strip()
        if line.startswith("# "):
            said = line[2:]
        elif line.startswith(".venv/bin/cruft "):
            commands[said] = line
    return commands


def change(repo, what):
    """Run the README's command for `what`, as written (cruft from this venv stands for .venv/bin/cruft)."""
    commands = readme_commands(repo)
    (command,) = [line for said, line in commands.items() if said.startswith(what)] or [None]
    assert command, f"no command for {what!r} in the README: {list(commands)}"
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/cruft"
    run(["cruft", *argv[1:]], cwd=repo)
    return command


def dag_tables(repo, slug="my-job"):
    """DAG_ID, IMAGE, STEPS and RESOURCES as the DAG file writes them (read without Airflow)."""
    tree = ast.parse((repo / "dags" / f"{slug}.py").read_text())
    wanted = {"DAG_ID", "IMAGE", "STEPS", "RESOURCES"}
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in wanted
    }


def assert_users_files_kept(repo):
    assert (repo / "main.py").read_text() == USERS_MAIN
    assert (repo / "requirements.txt").read_text() == USERS_REQUIREMENTS
    assert conflicts(repo) == []


def test_adding_a_step_adds_its_pod_and_leaves_main_py_to_the_user(job_repo):
    change(job_repo, "add a step")

    dag = dag_tables(job_repo)
    assert list(dag["STEPS"]) == ["prepare", "train", "evaluate"]
    assert dag["STEPS"]["evaluate"] == "python main.py evaluate"
    assert dag["RESOURCES"]["evaluate"] == DEFAULT_RESOURCES
    assert dag["RESOURCES"]["train"]["memory"] == ["8Gi", "16Gi"]  # the other steps keep theirs
    assert_users_files_kept(job_repo)


def test_removing_a_step_removes_its_pod(job_repo):
    change(job_repo, "remove a step")

    dag = dag_tables(job_repo)
    assert list(dag["STEPS"]) == list(dag["RESOURCES"]) == ["train"]
    assert dag["RESOURCES"]["train"]["memory"] == ["8Gi", "16Gi"]
    assert_users_files_kept(job_repo)


def test_renaming_a_step_keeps_its_resources(job_repo):
    change(job_repo, "rename a step")

    dag = dag_tables(job_repo)
    assert list(dag["STEPS"]) == list(dag["RESOURCES"]) == ["prepare", "fit"]
    assert dag["STEPS"]["fit"] == "python main.py fit"
    assert dag["RESOURCES"]["fit"]["memory"] == ["8Gi", "16Gi"]
    assert_users_files_kept(job_repo)


def test_one_steps_resources_change_and_the_others_stay(job_repo):
    change(job_repo, "give one step other resources")

    resources = dag_tables(job_repo)["RESOURCES"]
    assert resources["train"] == {"cpu": ["2", "4"], "memory": ["16Gi", "32Gi"], "gpus": 0}
    assert resources["prepare"] == DEFAULT_RESOURCES
    assert "| train | 2 - 4 | 16Gi - 32Gi | 0 |" in (job_repo / "README.md").read_text()
    assert_users_files_kept(job_repo)


def test_letting_the_form_sweep_a_step_maps_it_and_leaves_main_py_to_the_user(job_repo):
    change(job_repo, "sweep a step")

    dag = (job_repo / "dags" / "my-job.py").read_text()
    assert 'SWEEP_STEPS = ["train"]' in dag and "SWEEP_AT_ONCE = 4" in dag  # the default: no answer before
    assert ".expand(sweep_copy=copies)" in dag
    assert "| Sweep of step train |" in (job_repo / "README.md").read_text()
    assert_users_files_kept(job_repo)


def test_an_answer_the_template_refuses_changes_nothing(job_repo):
    steps_only = ["cruft", "update", "-y", "--variables-to-update", '{"steps": "prepare,fit"}']
    refused = run(steps_only, cwd=job_repo, check=False)
    assert refused.returncode != 0 and "step_resources" in refused.stdout + refused.stderr  # train is gone
    assert "Nothing changed: run cruft update again with corrected answers." in refused.stderr
    assert git("status", "--porcelain", cwd=job_repo) == ""


def test_renaming_the_job_renames_the_dag_and_the_image(job_repo):
    change(job_repo, "rename the job")

    assert not (job_repo / "dags" / "my-job.py").exists()
    dag = dag_tables(job_repo, "churn-model")
    assert dag["DAG_ID"] == "churn-model"
    assert dag["IMAGE"] == "repo.irtsysx.fr:5086/confiance/churn-model"  # a new repository path in Nexus
    assert list(dag["STEPS"]) == ["prepare", "train"]
    assert ci_variables(job_repo)["PROJECT_NAME"] == "churn-model"
    assert ci_variables(job_repo)["DAG_FILE"] == "dags/churn-model.py"
    assert "churn-model" in (job_repo / "Makefile").read_text()
    assert_users_files_kept(job_repo)


@pytest.fixture
def airflow_dags(tmp_path):
    """The airflow-dags repository (bare, as on GitLab) with the job's DAG released before the rename."""
    work, bare = tmp_path / "airflow-dags", tmp_path / "airflow-dags.git"
    work.mkdir()
    (work / "my-job.py").write_text(OWNER_HEADER.format(project=GITLAB_PROJECT) + "DAG_ID = 'my-job'\n")
    commit_all(work, "my-job v0.1.0", init=True)
    git("clone", "-q", "--bare", work, bare)
    git("config", "receive.advertisePushOptions", "true", cwd=bare)  # as GitLab does (the job pushes -o ci.skip)
    return bare


def press_retire(repo, bare, **overrides):
    """The shared CI's airflow-dag-retire job in a pipeline of the repo's current commit: the job repo's
    .gitlab-ci.yml variables, plus any the pipeline was run with. Its output."""
    env = {**os.environ, **ci_variables(repo), "AIRFLOW_DAGS_REPO": str(bare), "AIRFLOW_DAGS_BRANCH": "main"}
    env |= {"AIRFLOW_DAGS_TOKEN": "not-a-token", "CI_PROJECT_PATH": GITLAB_PROJECT, **overrides}
    env["PYTHONPATH"] = str(ROOT / "package" / "src")
    return run([sys.executable, "-m", "confiance_job", "retire-dag"], cwd=repo, env=env).stdout


def dag_files(bare):
    return git("ls-tree", "--name-only", "main", cwd=bare).split()


def test_retiring_before_the_rename_removes_the_old_dag(job_repo, airflow_dags):
    assert "Retired my-job.py" in press_retire(job_repo, airflow_dags)  # step 1, on the default branch
    change(job_repo, "rename the job")  # step 2
    commit_all(job_repo, "Rename to churn-model")
    assert dag_files(airflow_dags) == []  # until the release of step 3 syncs churn-model.py


def test_after_the_rename_the_retire_job_needs_the_old_slug(job_repo, airflow_dags):
    change(job_repo, "rename the job")
    commit_all(job_repo, "Rename to churn-model")
    assert "churn-model.py is not in" in press_retire(job_repo, airflow_dags)  # the new name: nothing to retire
    assert dag_files(airflow_dags) == ["my-job.py"]

    assert "`PROJECT_NAME` set to the old slug" in (job_repo / "README.md").read_text()
    assert "Retired my-job.py" in press_retire(job_repo, airflow_dags, PROJECT_NAME="my-job")
    assert dag_files(airflow_dags) == []


def test_the_generated_repo_says_how_to_change_the_job_before_how_to_update_it(job_repo):
    readme = (job_repo / "README.md").read_text()
    assert readme.index("## Change the job") < readme.index("## Update from the template")
    changes = ["add a step", "remove a step", "rename a step", "give one step other resources"]
    changes += ["sweep a step from the Trigger form", "rename the job"]
    assert [said.split(",")[0].split(" (")[0] for said in readme_commands(job_repo)] == changes


def test_after_adding_a_step_the_repos_tests_say_what_main_py_lacks_until_the_user_writes_it(job_repo):
    python = ensure_venv("airflow3", AIRFLOW_LINES["airflow3"] + AIRFLOW_TOOLS)  # the job repo's `make dev`
    dag_test = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_dag.py", "-k", "steps"]
    change(job_repo, "add a step")

    missing = run(dag_test, cwd=job_repo, check=False, timeout=900)
    assert missing.returncode == 1, missing.stdout
    assert "def evaluate(settings)" in missing.stdout  # what to write, and where: main.py's STEPS

    users_step = '\n\ndef evaluate(settings) -> None:\n    """Accuracy of the threshold."""\n\n\nSTEPS = {'
    (job_repo / "main.py").write_text(
        USERS_MAIN.replace("\n\nSTEPS = {", users_step).replace(
            '"train": train}', '"train": train, "evaluate": evaluate}'
        )
    )
    assert run(dag_test, cwd=job_repo, timeout=900).returncode == 0
