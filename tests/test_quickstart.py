"""The README's promises: its two commands, and the generated repo's own tooling."""

import os
import re

from support import CACHE, ROOT
from support.commands import run
from support.template import bake


def quick_start_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```\n(.*?)```", readme, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_the_readme_quick_start_is_generate_then_test():
    assert quick_start_commands() == ["make job ARGS=--no-input", "make test"]


def test_the_generate_command_makes_a_job_repo(tmp_path):
    run(["make", "-C", ROOT, "job", f"ARGS=--no-input --output-dir {tmp_path}"])
    assert (tmp_path / "my-job" / "dags" / "my-job.py").is_file()


def checkout_of_this_template(folder):
    """A git checkout holding this template's files as they are now (committed or not)."""
    for name in run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.splitlines():
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes((ROOT / name).read_bytes())
    run(["git", "init", "-q", "-b", "main"], cwd=folder)
    run(["git", "add", "."], cwd=folder)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "template"], cwd=folder)
    return folder


def test_the_generate_command_takes_answers_and_writes_next_to_the_checkout_not_in_it(tmp_path):
    clone = checkout_of_this_template(tmp_path / "confiance-job")
    answers = 'ARGS=--no-input project_name="Air Liquide TimeSeries" steps=prepare,train,predict'
    made = run(["make", "-C", clone, "job", answers, f"VENV={ROOT / '.venv'}"])
    assert "uncommitted changes" not in made.stdout + made.stderr
    dag = (tmp_path / "air-liquide-timeseries" / "dags" / "air-liquide-timeseries.py").read_text()
    assert '"prepare": "python main.py prepare"' in dag
    assert run(["git", "status", "--porcelain"], cwd=clone).stdout == ""  # a second bake sees a clean template


def test_ci_runs_the_readme_test_command_last_with_engines_required():
    lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert "export CONFIANCE_REQUIRE_ENGINES=1" in lines
    assert lines[-1] == quick_start_commands()[1]  # the test summary closes the CI log
    assert "make bench BENCH_ARGS=--quick" in lines  # the benchmark cannot rot


def test_pre_commit_passes_in_a_fresh_job_repo(tmp_path):
    repo = bake(tmp_path, steps="prepare,train", use_gpu=True, extra_ca_certificates=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(CACHE / "pre-commit")}
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    run(["git", "add", "."], cwd=repo)
    result = run(["pre-commit", "run", "--all-files"], cwd=repo, env=env, timeout=900)
    assert "Passed" in result.stdout and "Failed" not in result.stdout
