"""Following a run: each state change printed once, the end reported, the exit decided.
The Airflow side is a scripted sequence of answers here; tests/test_trigger_from_ui.py
follows real runs in Airflow 3 and 2."""

import pytest
from confiance_job.trigger import TriggerError, follow


class ScriptedRun:
    """Answers run_state() with the next (run state, {step: state}) of a script, then the last forever."""

    def __init__(self, *answers):
        self.answers = list(answers)

    def run_state(self, run_id):
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def run_page(self, run_id):
        return f"http://airflow/runs/{run_id}"

    def log_page(self, run_id, step):
        return f"http://airflow/runs/{run_id}/tasks/{step}"


def followed(run, timeout=60):
    lines = []
    try:
        follow(run, "manual__1", timeout, every=0, say=lines.append)
    except TriggerError as error:
        return lines, str(error)
    return lines, None


def test_a_successful_run_prints_each_change_once_and_ends_well():
    run = ScriptedRun(
        ("queued", {"prepare": "waiting", "train": "waiting"}),
        ("running", {"prepare": "running", "train": "waiting"}),
        ("running", {"prepare": "running", "train": "waiting"}),
        ("success", {"prepare": "success", "train": "success"}),
    )
    lines, error = followed(run)
    assert error is None
    assert lines == [
        "  prepare: waiting",
        "  train: waiting",
        "  prepare: running",
        "  prepare: success",
        "  train: success",
        "Run manual__1: success\nhttp://airflow/runs/manual__1",
    ]


def test_a_failed_run_names_the_failed_step_and_its_log():
    run = ScriptedRun(("failed", {"prepare": "success", "train": "failed", "predict": "upstream_failed"}))
    lines, error = followed(run)
    assert error == "run manual__1 failed: step train failed"
    assert "  log of train: http://airflow/runs/manual__1/tasks/train" in lines


def test_a_run_that_does_not_end_in_time_is_left_running():
    lines, error = followed(ScriptedRun(("running", {"train": "running"})), timeout=0)
    assert error == "run manual__1 is still running after 0 s; it goes on in Airflow: http://airflow/runs/manual__1"


@pytest.mark.parametrize("state", ["success", "failed"])
def test_the_run_state_decides_even_without_steps(state):
    lines, error = followed(ScriptedRun((state, {})))
    assert (error is None) == (state == "success")
