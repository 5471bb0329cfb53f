{%- set steps = cookiecutter.steps | items -%}
"""Tests of main.py: each step runs, --dry-run changes nothing, failures exit non-zero."""

import json

import pytest

import main

STEPS = [{% for step in steps %}"{{ step }}"{{ ", " if not loop.last }}{% endfor %}]


def run_all_steps(data_dir, run_id):
    return [main.main([step, "--data-dir", str(data_dir), "--run-id", run_id]) for step in STEPS]


def test_every_step_runs_in_order_and_writes_its_result_in_the_run_folder(tmp_path):
    assert run_all_steps(tmp_path, "manual__1") == [0] * len(STEPS)
    for step in STEPS:
        result = json.loads((tmp_path / "runs" / "manual__1" / f"{step}.json").read_text())
        assert result["step"] == step and result["run_id"] == "manual__1"


def test_two_runs_write_to_two_folders(tmp_path):
    assert run_all_steps(tmp_path, "first") == run_all_steps(tmp_path, "second") == [0] * len(STEPS)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["first", "second"]


def test_dry_run_writes_nothing(tmp_path, capsys):
    for step in STEPS[:1]:
        assert main.main([step, "--data-dir", str(tmp_path), "--dry-run"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "dry run: would write" in capsys.readouterr().out


def test_settings_come_from_the_environment_the_dag_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("RUN_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("RUN_ID", "scheduled__2026")
    monkeypatch.setenv("IMAGE_TAG", "1.2.3")
    assert main.main([STEPS[0]]) == 0
    result = json.loads((tmp_path / "from-env" / f"{STEPS[0]}.json").read_text())
    assert (result["run_id"], result["image_tag"]) == ("scheduled__2026", "1.2.3")


def test_a_failing_step_exits_non_zero_and_logs_why(tmp_path, monkeypatch, capsys):
    def broken(settings):
        raise RuntimeError("the data is not there")

    monkeypatch.setitem(main.STEPS, STEPS[0], broken)
    assert main.main([STEPS[0], "--data-dir", str(tmp_path)]) == 1
    assert "the data is not there" in capsys.readouterr().out
{%- if steps | length > 1 %}


def test_a_step_without_its_input_fails_clearly(tmp_path, capsys):
    assert main.main([STEPS[1], "--data-dir", str(tmp_path)]) == 1
    assert "did the previous step run" in capsys.readouterr().out
{%- endif %}


def test_an_unknown_step_is_refused():
    with pytest.raises(SystemExit) as exit_info:
        main.parse_args(["no-such-step"])
    assert exit_info.value.code == 2
