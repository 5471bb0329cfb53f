"""The generated main.py's MLflow plumbing, against a real tracking server with users: every step of
one Airflow run, and a retry of a step, log into one MLflow run; another Airflow run gets its own."""

import functools
import json
import os

import pytest
from support.commands import run
from support.mlflow_server import MLFLOW_VERSION, tags
from support.template import bake
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

STEPS = ["prepare", "train", "predict"]
EXPERIMENT = "air-liquide-timeseries"


@pytest.fixture(scope="module")
def server(mlflow_server):
    return mlflow_server.ready()


@pytest.fixture(scope="module")
def job(tmp_path_factory, server):
    """The example job, baked with the server's address, and a python with its requirements."""
    repo = bake(tmp_path_factory.mktemp("job"), project_name="Air Liquide TimeSeries", steps=",".join(STEPS),
                mlflow_tracking_uri=server.uri)  # fmt: skip
    requirements = [line for line in (repo / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert requirements == [f"mlflow-skinny=={MLFLOW_VERSION}"]
    return repo, ensure_venv(f"mlflow-client-{MLFLOW_VERSION}", requirements)


@functools.cache
def pods_env(repo, run_id):
    """{step: the env of its pod} in this run, as the DAG renders it (make render)."""
    render = ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS).parent / "confiance-job"
    pods = json.loads(run([render, "render", "{}", "--run-id", run_id], cwd=repo).stdout)["items"]
    return {
        pod["metadata"]["labels"]["task_id"]: {v["name"]: v["value"] for v in pod["spec"]["containers"][0]["env"]}
        for pod in pods
    }


def run_step(job, server, step, run_id, data_dir, try_number=1):
    """The step as its pod runs it: the pod's env, the Secret's keys, a local folder for the NFS share."""
    repo, python = job
    env = dict(pods_env(repo, run_id)[step])
    env["RUN_DIR"] = env["RUN_DIR"].replace(env["DATA_DIR"], str(data_dir))
    env.update(DATA_DIR=str(data_dir), TRY_NUMBER=str(try_number), **server.env)
    return run([python, "main.py", step], cwd=repo, env={**os.environ, **env})


def test_one_airflow_run_is_one_mlflow_run_whatever_the_retries_and_another_run_gets_its_own(job, server, tmp_path):
    printed = "".join(run_step(job, server, step, "manual__a", tmp_path).stdout for step in STEPS)
    printed += run_step(job, server, "train", "manual__a", tmp_path, try_number=2).stdout  # a retry
    (first,) = server.runs(EXPERIMENT, airflow_run_id="manual__a")
    assert tags(first)["mlflow.runName"] == "manual__a"
    assert sorted(server.artifacts(first["info"]["run_id"])) == [f"{step}.json" for step in sorted(STEPS)]
    printed += "".join(run_step(job, server, step, "manual__b", tmp_path).stdout for step in STEPS)
    (second,) = server.runs(EXPERIMENT, airflow_run_id="manual__b")
    assert second["info"]["run_id"] != first["info"]["run_id"]
    assert len(server.runs(EXPERIMENT)) == 2
    assert server.password not in printed


def test_without_a_tracking_server_the_steps_run_and_leave_no_mlflow_files(job, tmp_path):
    repo, python = job
    env = {name: value for name, value in os.environ.items() if not name.startswith("MLFLOW_")}
    for step in STEPS:
        run([python, "main.py", step, "--data-dir", tmp_path], cwd=repo, env=env)
    assert not [name for name in ("mlruns", "mlflow.db", "mlartifacts") if (repo / name).exists()]
    assert sorted(path.name for path in (tmp_path / "runs" / "local").iterdir()) == [f"{s}.json" for s in sorted(STEPS)]
