{%- set steps = cookiecutter.steps | items -%}
{%- set swept = cookiecutter.sweep_steps | items -%}
{%- set picks = steps[:-1] | select("in", swept) | list -%}
"""Tests of main.py: the promises the DAG relies on, whatever your steps do.

They call main.main() as a pod runs `python main.py <step>`, each test in a fresh
empty folder. Keep them passing when you write your steps; add tests of your own
code below. Only the last {{ 'tests are' if picks else 'test is' }} about the example code: rewrite {{ 'them' if picks else 'it' }} for yours.
"""

import inspect

import pytest

import main


def what_main_py_lacks():
    """The names these tests (and the pods) call main.py through, where main.py lacks them (README: Work on it)."""
    lacking = []
    if not isinstance(getattr(main, "STEPS", None), dict):
        lacking.append("STEPS = {'step name': its function, ...}, in the order the DAG runs them")
    for name, what in (
        ("parse_args", "parse_args(argv): reads `<step> [--data-dir D] [--run-id R] [--dry-run]`"),
        ("main", "main(argv): runs one step as `python main.py <step>` does, and returns its exit code"),
    ):
        function = getattr(main, name, None)
        if not callable(function) or not inspect.signature(function).parameters:
            lacking.append(what)
    return lacking


if what_main_py_lacks():  # say it once, instead of a TypeError in every test
    pytest.fail("main.py must keep:\n  " + "\n  ".join(what_main_py_lacks()), pytrace=False)

STEPS = list(main.STEPS)  # your steps, in the order the DAG runs them


@pytest.fixture(autouse=True)
def fresh_folder(tmp_path, monkeypatch):
    """Each test starts in an empty folder, without the settings the DAG gives a pod,
    so that it also passes on a fresh checkout, and leaves nothing in the repo."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATA_DIR", "RUN_DIR", "RUN_ID", "IMAGE_TAG", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
{%- if cookiecutter.sweep_steps.strip() %}
    for name in ("SWEEP_INDEX", "SWEEP_SIZE", "SWEEP_DIR"):  # and one pod of a sweep's
        monkeypatch.delenv(name, raising=False)
{%- endif %}


def run_step(step, run_id="manual__1", *options):
    return main.main([step, "--data-dir", "data", "--run-id", run_id, *options])


def files_in(folder):
    return {str(path): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_every_step_runs_in_order_and_exits_0():
    for step in STEPS:
        assert run_step(step) == 0, f"step {step} failed: its log above says why"


def test_a_dry_run_of_any_step_writes_nothing_even_before_the_earlier_steps_ran(tmp_path):
    for step in STEPS:
        assert run_step(step, "manual__1", "--dry-run") == 0, f"`python main.py {step} --dry-run` failed"
        assert list(files_in(tmp_path)) == [], f"`python main.py {step} --dry-run` wrote files"


def test_a_failing_step_exits_non_zero_and_says_why(monkeypatch, capsys):
    def broken(settings):
        raise RuntimeError("the input table is empty")

    monkeypatch.setitem(main.STEPS, STEPS[0], broken)
    assert run_step(STEPS[0]) != 0  # Airflow then marks the task failed
    said = capsys.readouterr()
    assert "the input table is empty" in said.out + said.err  # the pod's log shows both: it says why


def test_a_second_run_overwrites_nothing_the_first_one_wrote(tmp_path):
    assert [run_step(step, "manual__first") for step in STEPS] == [0] * len(STEPS)
    first = files_in(tmp_path)
    assert [run_step(step, "manual__second") for step in STEPS] == [0] * len(STEPS)
    second = files_in(tmp_path)
    assert [path for path in first if second[path] != first[path]] == []


def test_the_steps_write_to_the_run_folder_the_dag_gives_them(tmp_path, monkeypatch):
    monkeypatch.setenv("RUN_DIR", str(tmp_path / "from-the-dag"))
    monkeypatch.setenv("RUN_ID", "scheduled__2026")
    for step in STEPS:
        assert main.main([step]) == 0
    assert not (tmp_path / "data" / "runs").exists(), "a step ignored RUN_DIR"


def test_an_unknown_step_is_refused():
    with pytest.raises(SystemExit) as exit_info:
        main.parse_args(["no-such-step"])
    assert exit_info.value.code == 2


# ---- About the example code: rewrite {{ 'these tests' if picks else 'this test' }} for your own steps. ----


def test_the_example_steps_pass_their_results_along(tmp_path):
    import json

    for step in STEPS:
        assert run_step(step) == 0
    for step in STEPS:
        result = json.loads((tmp_path / "data" / "runs" / "manual__1" / f"{step}.json").read_text())
        assert result["step"] == step and result["run_id"] == "manual__1"
{%- for step in picks %}{% if loop.first %}


def test_the_example_step_after_a_sweep_picks_the_best_of_its_pods(tmp_path, monkeypatch):
    import json

    run_dir = tmp_path / "data" / "runs" / "manual__1"
    swept = STEPS.index("{{ step }}")
    for step in STEPS[:swept]:
        assert run_step(step) == 0
    for index, rate in enumerate(["0.1", "0.01", "0.001"]):  # what the DAG gives each pod of a sweep
        monkeypatch.setenv("LR", rate)
        monkeypatch.setenv("SWEEP_INDEX", str(index))
        monkeypatch.setenv("SWEEP_DIR", str(run_dir / "{{ step }}-sweep" / f"{index:04d}"))
        assert run_step("{{ step }}") == 0
    for name in ("LR", "SWEEP_INDEX", "SWEEP_DIR"):
        monkeypatch.delenv(name)
    assert run_step(STEPS[swept + 1]) == 0
    result = json.loads((run_dir / f"{STEPS[swept + 1]}.json").read_text())
    assert result["of"] == 3 and result["best"]["learning_rate"] == 0.01
{%- endif %}{% endfor %}
