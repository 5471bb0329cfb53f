"""Sweeps: one field of the Trigger form runs a step as one pod per item of a list, through
Airflow's dynamic task mapping. Offline on both Airflow lines (the DAG loads, the pods of a
3-item sweep render and validate, `make render` refuses bad lists), then in a real Airflow
of each line: the copies named by their values and followed in the terminal, a failed copy
stopping the run before the next step, every bad list refused by the REST API and by
`make trigger` with no run created, and the platform's largest sweep. (The Trigger form's
sweep field, in Chromium: tests/test_trigger_from_ui.py.)"""

import json
import os
import re
import shutil
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from confiance_job.rules import SWEEP_MAX
from confiance_job.trigger import Airflow, call
from support.airflow_server import PASSWORD, USER, Airflow2Standalone, AirflowServer
from support.commands import need, run, wait_until
from support.template import bake, with_short_retry_delay
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

DAG_ID = "sweep-job"
ANSWERS = {"project_name": DAG_ID, "steps": "prepare,train,select", "sweep_steps": "train", "sweep_at_once": "2"}
RENDER_RUNS = Path(__file__).parent / "helpers" / "render_runs.py"
THREE = [{"LR": "0.1"}, {"LR": "0.01"}, {"LR": "0.001", "DEPTH": "3"}]
# Each refusal: the list, what `make render` and `make trigger` say, what Airflow itself says.
BAD_SWEEPS = {
    "not-a-list": ({"LR": "0.1"}, 'must be empty or a list, not {"LR": "0.1"}', "is not of type"),
    "empty": ([], "an empty list runs nothing", "should be non-empty"),
    "number": ([{"LR": 0.1}], 'item 1 {"LR": 0.1}: every value must be text', "is not of type"),
    "bad-name": (
        [{"LR": "1"}, {"learning-rate": "1"}],
        'item 2 {"learning-rate": "1"}: "learning-rate": not a variable',
        "does not match",
    ),
    "run-variable": ([{"RUN_DIR": "/tmp"}], 'item 1 {"RUN_DIR": "/tmp"}: "RUN_DIR": set by the run', "should not be"),
    "too-long": ([{"LR": "0.1"}] * (SWEEP_MAX + 1), f"{SWEEP_MAX + 1} items, more than {SWEEP_MAX}", "is too long"),
}


def env_of(pod):
    return {var["name"]: var.get("value") for var in pod["spec"]["containers"][0]["env"]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A job of three steps whose train the form can sweep, 2 pods at a time."""
    return bake(tmp_path_factory.mktemp("sweep"), **ANSWERS)


def make(repo, bin_dir, *argv, env=None):
    """make in the job repo, the Airflow venv standing for its .venv (make dev is done)."""
    return run(["make", "-o", "dev", f"BIN={bin_dir}", *argv], cwd=repo, env=env, check=False)


def test_a_job_without_a_sweep_has_none_of_its_code(tmp_path):
    plain = bake(tmp_path, **{**ANSWERS, "project_name": "plain", "sweep_steps": "", "sweep_at_once": ""})
    for path in ("dags/plain.py", "main.py", "Makefile", "tests/test_dag.py", "tests/test_main.py"):
        assert "sweep" not in (plain / path).read_text().lower(), path  # nothing to parse, read or maintain
    assert "This job sweeps no step" in (plain / "README.md").read_text()  # only how to add one


# ---- Offline, on both Airflow lines ----


def test_a_3_item_sweep_renders_a_valid_pod_per_item_between_steps_that_run_once(airflow_python, repo):
    # render_runs.py checks every pod against the Kubernetes schema (strict) before printing it.
    runs = {"manual__s": {"train_sweep": THREE}}
    output = run([airflow_python, RENDER_RUNS, repo / "dags" / f"{DAG_ID}.py", json.dumps(runs)]).stdout
    pods = json.loads(output)["manual__s"]
    assert list(pods) == ["prepare", "train[0]", "train[1]", "train[2]", "select"]
    run_dir = env_of(pods["prepare"])["RUN_DIR"]
    for index, values in enumerate(THREE):
        pod = pods[f"train[{index}]"]
        env = env_of(pod)
        assert {name: env[name] for name in values} == values
        assert (env["SWEEP_INDEX"], env["SWEEP_SIZE"], env["RUN_DIR"]) == (str(index), "3", run_dir)
        assert env["SWEEP_DIR"] == f"{run_dir}/train-sweep/{index:04d}"
        assert pod["metadata"]["labels"]["map_index"] == str(index)  # how the provider finds its pod again
    assert "DEPTH" not in env_of(pods["train[0]"]) and "SWEEP_INDEX" not in env_of(pods["select"])


def test_make_render_shows_one_pod_per_copy_and_refuses_each_bad_sweep(airflow_python, repo):
    bin_dir = airflow_python.parent
    shown = make(repo, bin_dir, "render", f"SWEEP={json.dumps(THREE)}")
    assert shown.returncode == 0, shown.stderr
    items = json.loads(shown.stdout)["items"]
    assert [env_of(pod).get("LR") for pod in items] == [None, "0.1", "0.01", "0.001", None]
    one_step = run([bin_dir / "confiance-job", "render", "--step", "train", "--sweep", json.dumps(THREE)], cwd=repo)
    assert len(json.loads(one_step.stdout)["items"]) == 3
    unswept = json.loads(make(repo, bin_dir, "render").stdout)["items"]
    assert len(unswept) == 3 and "SWEEP_INDEX" not in env_of(unswept[1])  # the field left empty: train runs once
    sweep, message, _ = BAD_SWEEPS["run-variable"]
    refused = make(repo, bin_dir, "render", f"SWEEP={json.dumps(sweep)}")
    assert refused.returncode != 0 and refused.stdout == ""  # no pod
    assert f"render: the Trigger form would refuse these values:\n  train_sweep: {message}" in refused.stderr
    # Every refusal, through the same function as make render, in one process:
    confs = {name: {"train_sweep": sweep} for name, (sweep, _, _) in BAD_SWEEPS.items()}
    output = run([airflow_python, RENDER_RUNS, repo / "dags" / f"{DAG_ID}.py", json.dumps(confs), "--refused"]).stdout
    said = json.loads(output)
    for name, (_, message, _) in BAD_SWEEPS.items():
        assert said[name].startswith(f"train_sweep: {message}"), (name, said[name])


# ---- A real Airflow of each line ----


@pytest.fixture(scope="module", params=["airflow3", "airflow2"])
def airflow(request, tmp_path_factory):
    """An Airflow standalone of this line with a sweep job's DAG (a failed try retried after 1 s),
    and the job repo whose make commands talk to it. There is no cluster: every pod fails as it
    starts, so the swept step comes first here (the podman test below runs prepare before it)."""
    line = request.param
    python = ensure_venv(line, AIRFLOW_LINES[line] + AIRFLOW_TOOLS)
    root = tmp_path_factory.mktemp(line)
    repo = bake(root / "jobs", **{**ANSWERS, "steps": "train,select"})
    dag = repo / "dags" / f"{DAG_ID}.py"
    dag.write_text(with_short_retry_delay(dag.read_text()))
    (root / "dags").mkdir()
    shutil.copy(dag, root / "dags")
    server = (AirflowServer if line == "airflow3" else Airflow2Standalone)(
        python.parent / "airflow", root / "airflow", root / "dags"
    )
    try:
        server.start()
        api = Airflow(server.url, USER, PASSWORD, DAG_ID)
        wait_until(lambda: api.request("GET", f"/dags/{DAG_ID}"), timeout=180)
        env = {**os.environ, "AIRFLOW_URL": server.url, "AIRFLOW_USER": USER, "AIRFLOW_PASSWORD": PASSWORD}
        yield SimpleNamespace(url=server.url, api=api, repo=repo, bin=python.parent, env=env, line=line, root=root)
    finally:
        server.stop()


def run_path(run_id):
    return f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def run_ids(airflow):
    return {run["dag_run_id"] for run in airflow.api.request("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]}


def instances(airflow, run_id, step):
    found = airflow.api.request("GET", f"{run_path(run_id)}/taskInstances?limit=100")["task_instances"]
    return sorted((task for task in found if task["task_id"] == step), key=lambda task: task["map_index"])


@pytest.mark.engine
@pytest.mark.xdist_group("airflow-sweeps")
def test_a_sweep_from_the_terminal_runs_a_pod_per_item_and_a_failed_one_stops_the_run(airflow):
    # No cluster here: each pod fails as it starts, which is what a failed copy does to a run.
    started = make(airflow.repo, airflow.bin, "trigger", f"SWEEP={json.dumps(THREE)}", "WAIT=1", env=airflow.env)
    output = started.stdout + started.stderr
    assert started.returncode == 2, output  # make's code for a command that failed: the run failed
    run_id = re.search(rf"^Started {DAG_ID} run (\S+)$", started.stdout, re.M)[1]
    copies = instances(airflow, run_id, "train")
    assert [task["map_index"] for task in copies] == [0, 1, 2]
    assert [task["rendered_map_index"] for task in copies] == ["0: LR=0.1", "1: LR=0.01", "2: LR=0.001, DEPTH=3"]
    assert {task["state"] for task in copies} == {"failed"}
    assert [task["state"] for task in instances(airflow, run_id, "select")] == ["upstream_failed"]
    for index, label in enumerate(["LR=0.1", "LR=0.01", "LR=0.001, DEPTH=3"]):  # each copy's log, under its name
        # The pods run at once: a header says whose lines follow each time it changes, as tail -f does.
        assert re.search(rf"^==> train\[{index}\]( {re.escape(label)})? \(try 1\) <==$", output, re.M), output
        assert f"  train[{index}] {label}: failed" in output
    assert "  select: upstream_failed" in output
    assert f"trigger: run {run_id} failed: step train[0] LR=0.1 failed" in started.stderr


@pytest.mark.engine
@pytest.mark.xdist_group("airflow-sweeps")
def test_every_bad_sweep_is_refused_by_airflow_and_by_make_trigger_with_no_run(airflow):
    before = run_ids(airflow)
    for name, (sweep, message, airflow_says) in BAD_SWEEPS.items():
        body = {"conf": {"train_sweep": sweep}, **({"logical_date": None} if airflow.api.is_v2 else {})}
        status, answer = call("POST", f"{airflow.api.api}/dags/{DAG_ID}/dagRuns", body, airflow.api.headers)
        assert status == 400 and airflow_says in json.dumps(answer), (name, status, answer)
        refused = make(airflow.repo, airflow.bin, "trigger", f"SWEEP={json.dumps(sweep)}", env=airflow.env)
        assert refused.returncode != 0 and f"train_sweep: {message}" in refused.stderr, (name, refused.stderr)
    assert run_ids(airflow) == before


@pytest.mark.engine
@pytest.mark.xdist_group("airflow-sweeps")
def test_the_largest_sweep_the_platform_allows_gets_all_its_pods(airflow):
    sweep = [{"LR": f"{index / 10000:.4f}"} for index in range(SWEEP_MAX)]
    started = time.perf_counter()
    run_id = airflow.api.trigger({"train_sweep": sweep})

    def all_there():
        total = airflow.api.request("GET", f"{run_path(run_id)}/taskInstances?limit=1")["total_entries"]
        assert total == SWEEP_MAX + 2  # the copies, select, and train_sweep which lists them
        return time.perf_counter() - started

    seconds = wait_until(all_there, timeout=300, every=0.5)
    airflow.api.request("PATCH", run_path(run_id), {"state": "failed"})
    airflow.api.request("PATCH", f"/dags/{DAG_ID}", {"is_paused": True})  # nothing left to schedule: a quick stop
    listed = airflow.api.request("GET", f"{run_path(run_id)}/taskInstances/train_sweep")
    print(f"{SWEEP_MAX} pods of train: task instances created {seconds:.1f} s after the trigger "
          f"(train_sweep ran {listed['duration']:.1f} s of it)")  # fmt: skip


# ---- For real: the pods of a sweep run as the cluster would run them (podman) ----


@pytest.mark.engine
@pytest.mark.xdist_group("engines")
def test_prepare_then_three_train_pods_at_once_then_select_picks_the_best(engines, tmp_path):
    """The generated main.py's example: each train pod writes its score in its own folder, and
    select, which starts when all three are done, reads the three and writes the best."""
    from support.engines import docker
    from support.pods import PODMAN, PodRunner

    need(PODMAN, "podman is not installed (apt-get install podman catatonit)")
    registry, airflow_python = engines
    repo = bake(tmp_path / "jobs", docker_registry=registry.host, **ANSWERS)
    image = f"{registry.host}/confiance/{DAG_ID}:0.1.0"
    docker("build", "--quiet", "--tag", image, repo, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    try:
        docker("push", "--quiet", image, env=registry.docker_login(tmp_path / "docker"))
    finally:
        docker("image", "rm", "--force", image, check=False)
    runs = {"manual__sweep": {"train_sweep": THREE}}
    pods = json.loads(run([airflow_python, RENDER_RUNS, repo / "dags" / f"{DAG_ID}.py", json.dumps(runs)]).stdout)
    pods = pods["manual__sweep"]
    nfs = tmp_path / "nfs"
    nfs.mkdir()
    nfs.chmod(0o777)  # the image runs as uid 1000, as on the real share
    runner = PodRunner(tmp_path / "podman", registry)

    def play(name):
        result = runner.run(pods[name], nfs)
        assert result.exit_code == 0, (name, result.logs)
        return result

    play("prepare")
    with ThreadPoolExecutor(max_workers=3) as pool:  # the three pods at once, as Airflow starts them
        list(pool.map(play, ["train[0]", "train[1]", "train[2]"]))
    chosen = play("select")

    run_dir = nfs / DAG_ID / "runs" / "manual__sweep"
    folders = sorted(path.name for path in (run_dir / "train-sweep").iterdir())
    assert folders == ["0000", "0001", "0002"]
    trained = [json.loads((run_dir / "train-sweep" / folder / "train.json").read_text()) for folder in folders]
    assert [result["learning_rate"] for result in trained] == [0.1, 0.01, 0.001]
    assert [result["sweep_index"] for result in trained] == [0, 1, 2]
    assert all(result["after"] == "prepare" for result in trained)  # each read what prepare wrote, once
    best = json.loads((run_dir / "select.json").read_text())
    assert best["of"] == 3 and best["best"]["learning_rate"] == 0.01 and "best of 3" in chosen.logs
    assert sorted(path.name for path in run_dir.iterdir()) == ["prepare.json", "select.json", "train-sweep"]
