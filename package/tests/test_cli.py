"""The command line: what it prints, and the errors it explains."""

import subprocess
import sys
from pathlib import Path

import pytest
from confiance_job import __version__, cli
from confiance_job.cli import main


def test_release_version_prints_the_version(capsys):
    assert main(["release-version", "v1.2.3-rc.1"]) == 0
    assert capsys.readouterr().out == "1.2.3-rc.1\n"


def test_a_tag_that_is_not_a_release_fails_with_its_rule(capsys):
    assert main(["release-version", "release-1"]) == 1
    assert (
        "release-version: tag 'release-1' is not a release tag. Expected vMAJOR.MINOR.PATCH" in capsys.readouterr().err
    )


def test_render_outside_a_job_repo_says_where_to_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", "{}"]) == 1
    assert "run this in a job repo (one DAG file in dags/), or give the DAG file with --dag" in capsys.readouterr().err


def test_it_runs_as_a_module_and_tells_its_version():
    result = subprocess.run(
        [sys.executable, "-m", "confiance_job", "--version"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    assert result.stdout.strip() == f"confiance-job {__version__}"


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_the_jobs_dag_is_found_beside_its_serving_dag(tmp_path, monkeypatch):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "my-job.py").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cli.UsageError, match="my-job has no serving DAG"):
        cli.serving_dag_file()
    (tmp_path / "dags" / "my-job-serve.py").write_text("")
    assert (cli.job_dag_file(), cli.serving_dag_file()) == (Path("dags/my-job.py"), Path("dags/my-job-serve.py"))


SCHEMAS = {"image_tag": {}, "train_sweep": {}, "fit_sweep": {}}


def test_sweep_takes_a_list_for_the_one_swept_step_or_step_equals_list():
    one = {"image_tag": {}, "train_sweep": {}}
    assert cli.sweep_conf({}, '[{"LR": "0.1"}]', one) == {"train_sweep": [{"LR": "0.1"}]}
    assert cli.sweep_conf({"a": 1}, 'fit=[{"N": "2"}]', SCHEMAS) == {"a": 1, "fit_sweep": [{"N": "2"}]}
    assert cli.sweep_conf({}, "[]", {"sweep": {}}) == {"sweep": []}  # a one-step job; the form says why [] is refused


@pytest.mark.parametrize(
    "sweep, schemas, message",
    [
        ('[{"LR": "0.1"}]', SCHEMAS, "a sweep (make: SWEEP=) is a JSON list, or STEP=<list> for one of the swept"),
        ('MAX_DEPTH=[{"LR": "0.1"}]', SCHEMAS, "MAX_DEPTH is not a swept step: a sweep (make: SWEEP=) is a JSON"),
        ("train=[{LR: 0.1}]", SCHEMAS, "--sweep is not valid JSON: Expecting property name"),
        ('[{"LR": "0.1"}]', {"image_tag": {}}, "this job sweeps no step. To sweep train, say: .venv/bin/cruft update"),
    ],
    ids=["which-step", "unknown-step", "bad-json", "no-sweep"],
)
def test_a_sweep_the_form_cannot_take_says_what_to_type(sweep, schemas, message):
    with pytest.raises(cli.UsageError) as refused:
        cli.sweep_conf({}, sweep, schemas)
    assert str(refused.value).startswith(message), refused.value
