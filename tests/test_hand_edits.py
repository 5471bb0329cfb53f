"""A job repo changed by hand, as a data scientist would: the repo's own tests and `make render` say
what is wrong with it, naming the step and the value, before anything reaches Airflow or the cluster."""

import json
import re

import pytest
from support.commands import run
from support.template import bake, edit

STEPS = "prepare,train"


@pytest.fixture
def repo(tmp_path):
    return bake(tmp_path, project_name="Hand Edits", steps=STEPS, step_resources="train: memory=8Gi/16Gi cpu=2/4")


def dag_tests(airflow_python, repo):
    return run(
        [airflow_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_dag.py"], cwd=repo, check=False
    )


TRAIN_LINE = '"train": {"cpu": ["2", "4"], "memory": ["8Gi", "16Gi"], "gpus": 0},'

HAND_EDITS = {
    "bad-quantity": (
        TRAIN_LINE,
        TRAIN_LINE.replace('"8Gi"', '"8 GB"'),
        "step train: memory request '8 GB' is not a Kubernetes quantity, e.g. 16Gi or 512Mi",
    ),
    "request-above-limit": (
        TRAIN_LINE,
        TRAIN_LINE.replace('["2", "4"]', '["8", "4"]'),
        "step train: cpu request 8 is above its limit 4; the cluster refuses it",
    ),
    "step-without-resources": (
        '    "train": "python main.py train",\n',
        '    "train": "python main.py train",\n    "evaluate": "python main.py evaluate",\n',
        "RESOURCES has no line for step evaluate: add one per step of STEPS",
    ),
}


@pytest.mark.parametrize("old, new, message", HAND_EDITS.values(), ids=HAND_EDITS.keys())
def test_a_dag_edit_the_cluster_would_refuse_fails_the_repo_tests_naming_the_step(
    airflow_python, repo, old, new, message
):
    edit(repo / "dags" / "hand-edits.py", old, new)
    result = dag_tests(airflow_python, repo)
    assert result.returncode == 1
    assert message in result.stdout


def test_one_value_or_numbers_in_resources_work_as_for_the_cluster(airflow_python, repo):
    """ "cpu": "4" means reserved = maximum, as the step_resources answer does; numbers are quantities too."""
    edit(repo / "dags" / "hand-edits.py", TRAIN_LINE, '"train": {"cpu": 4, "memory": ["8Gi", "16Gi"], "gpus": 0},')
    edit(repo / "dags" / "hand-edits.py", '"prepare": {"cpu": ["1", "2"]', '"prepare": {"cpu": [1, 2]')
    result = dag_tests(airflow_python, repo)
    assert result.returncode == 0, result.stdout
    rendered = json.loads(run([airflow_python.parent / "confiance-job", "render"], cwd=repo).stdout)["items"]
    assert rendered[1]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "4"
    assert rendered[1]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "4"


def test_make_render_refuses_resources_the_cluster_would_refuse(airflow_python, repo):
    edit(repo / "dags" / "hand-edits.py", TRAIN_LINE, TRAIN_LINE.replace('"8Gi"', '"8 GB"'))
    rendered = run([airflow_python.parent / "confiance-job", "render"], cwd=repo, check=False)
    assert rendered.returncode == 1 and rendered.stdout == ""
    assert "step train: memory request '8 GB' is not a Kubernetes quantity" in rendered.stderr


def test_a_step_added_to_one_side_only_is_named_with_where_to_add_it(airflow_python, repo):
    main_py = repo / "main.py"
    edit(
        main_py,
        'STEPS = {"prepare": prepare, "train": train}',
        'STEPS = {"prepare": prepare, "train": train, "evaluate": train}',
    )
    result = dag_tests(airflow_python, repo)
    assert result.returncode == 1
    assert "add 'evaluate' to STEPS and RESOURCES in the DAG" in result.stdout
    edit(main_py, ', "evaluate": train}', "}")
    edit(repo / "dags" / "hand-edits.py", TRAIN_LINE, TRAIN_LINE + '\n    "evaluate": ' + TRAIN_LINE.split(": ", 1)[1])
    edit(
        repo / "dags" / "hand-edits.py",
        '    "train": "python main.py train",\n',
        '    "train": "python main.py train",\n    "evaluate": "python main.py evaluate",\n',
    )
    result = dag_tests(airflow_python, repo)
    assert result.returncode == 1
    assert re.search(r"add `def evaluate\(settings\)` to main.py and to its STEPS", result.stdout)


def with_venv(repo, airflow_python):
    """The repo's .venv, ready: the Airflow line's venv (which has the package), as `make dev` would leave it."""
    (repo / ".venv").mkdir()
    (repo / ".venv" / "bin").symlink_to(airflow_python.parent)
    (repo / ".venv" / ".ready").touch()
    return repo


def test_make_render_passes_the_form_values_exactly_as_typed(airflow_python, repo):
    command = "python main.py train --data-dir $DATA_DIR/v2 --note 'it''s' $$HOME"
    conf = json.dumps({"train_command": command, "env": {"PRICE": "5$"}})
    rendered = run(["make", "render", f"CONF={conf}"], cwd=with_venv(repo, airflow_python))
    train = json.loads(rendered.stdout)["items"][1]["spec"]["containers"][0]
    assert train["args"] == [command]
    assert {"name": "PRICE", "value": "5$"} in train["env"]
