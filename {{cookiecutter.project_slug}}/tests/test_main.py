{%- set steps = cookiecutter.steps.split(',') | map('trim') | list -%}
"""Tests of main.py: each step runs, --dry-run changes nothing, failures exit non-zero."""

import json

import pytest

import main

STEPS = [{% for step in steps %}"{{ step }}"{{ ", " if not loop.last }}{% endfor %}]


def run_all_steps(data_dir):
    return [main.main([step, "--data-dir", str(data_dir)]) for step in STEPS]


def test_every_step_runs_in_order_and_writes_its_result(tmp_path):
    assert run_all_steps(tmp_path) == [0] * len(STEPS)
    for step in STEPS:
        assert json.loads((tmp_path / f"{step}.json").read_text())["step"] == step


def test_dry_run_writes_nothing(tmp_path, capsys):
    for step in STEPS[:1]:
        assert main.main([step, "--data-dir", str(tmp_path), "--dry-run"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "dry run: would write" in capsys.readouterr().out


def test_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "from-env"))
    assert main.main([STEPS[0]]) == 0
    assert (tmp_path / "from-env" / f"{STEPS[0]}.json").exists()


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
