"""Logs in the terminal (`make logs`, `make trigger WAIT=1`) against a real Airflow 3 and 2:
each line of a step's log shown once, in order, while the step runs, try after try, and
at the end why the step failed. The DAG prints numbered lines slowly and fails: the log
API is the same whatever the operator (package/tests/test_logs.py: the pod's reasons)."""

import os
import re
import shutil
import statistics
import time
from datetime import datetime
from types import SimpleNamespace

import pytest
from confiance_job.logs import follow_logs
from confiance_job.trigger import Airflow, TriggerError
from support.airflow_server import PASSWORD, USER, Airflow2Standalone, AirflowServer
from support.commands import run, wait_until
from support.template import bake
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("airflow-logs")]

DAG_ID = "slow-steps"
DAG_FILE = """
from datetime import datetime, timedelta, timezone

try:
    from airflow.sdk import DAG, Param
except ImportError:
    from airflow import DAG
    from airflow.models.param import Param
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:
    from airflow.operators.bash import BashOperator

# Each line says which step, try and number it is, and when it was written.
LINE = '"{step} line $i of try {{{{ ti.try_number }}}} at $(date +%s.%N)"'

with DAG(
    dag_id="slow-steps",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    is_paused_upon_creation=False,
    params={"lines": Param(6, type="integer"), "every": Param(1, type="number"), "code": Param(3, type="integer")},
) as dag:
    prepare = BashOperator(
        task_id="prepare", bash_command="for i in 1 2 3; do echo " + LINE.format(step="prepare") + "; done"
    )
    train = BashOperator(
        task_id="train",
        bash_command="for i in $(seq 1 {{ params.lines }}); do echo " + LINE.format(step="train")
        + "; sleep {{ params.every }}; done; exit {{ params.code }}",
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    prepare >> train
"""
NUMBERED = re.compile(r"(prepare|train) line (\d+) of try (\d+) at ([\d.]+)$")


@pytest.fixture(scope="module", params=["airflow3", "airflow2"])
def airflow(request, tmp_path_factory):
    """One Airflow standalone of this line, with the DAG in its DAGs folder."""
    line = request.param
    python = ensure_venv(line, AIRFLOW_LINES[line] + AIRFLOW_TOOLS)
    root = tmp_path_factory.mktemp(line)
    (root / "dags").mkdir()
    (root / "dags" / "slow_steps.py").write_text(DAG_FILE)
    # A job repo whose DAG has this id, its .venv holding the platform's package: make logs as a user runs it.
    serving = {"mlflow_tracking_uri": "https://mlflow.example.org", "serving": "mlflow"}  # and its serving DAG
    repo = bake(root / "jobs", project_name=DAG_ID, steps="prepare,train", **serving)
    shutil.copy(repo / "dags" / f"{DAG_ID}-serve.py", root / "dags")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "confiance-job").symlink_to(python.parent / "confiance-job")
    (repo / ".venv" / ".ready").touch()
    server = (AirflowServer if line == "airflow3" else Airflow2Standalone)(
        python.parent / "airflow", root / "airflow", root / "dags"
    )
    try:
        started = time.perf_counter()
        server.start()
        api = Airflow(server.url, USER, PASSWORD, DAG_ID)
        wait_until(lambda: api.request("GET", f"/dags/{DAG_ID}"), timeout=180)
        print(f"{line} standalone with the DAG in {time.perf_counter() - started:.0f} s")
        yield SimpleNamespace(url=server.url, cli=python.parent / "confiance-job", root=root, line=line, repo=repo)
    finally:
        server.stop()


def login(airflow):
    return {**os.environ, "AIRFLOW_URL": airflow.url, "AIRFLOW_USER": USER, "AIRFLOW_PASSWORD": PASSWORD}


def cli(airflow, *argv):
    """`confiance-job ...` as `make logs` / `make trigger` run it."""
    return run([airflow.cli, *argv, "--dag-id", DAG_ID], cwd=airflow.root, env=login(airflow), check=False)


def make(airflow, *argv):
    """make in the job repo."""
    return run(["make", "--no-print-directory", *argv], cwd=airflow.repo, env=login(airflow), check=False)


def blocks(lines):
    """The headers and numbered lines, in the order shown: ("==> train (try 1) <==" or (step, try, number))."""
    seen = []
    for line in lines:
        numbered = NUMBERED.search(line)
        if line.startswith("==> "):
            seen.append(line)
        elif numbered:
            seen.append((numbered[1], int(numbered[3]), int(numbered[2])))
    return seen


def expected(train_lines, tries):
    order = ["==> prepare (try 1) <==", *[("prepare", 1, i) for i in (1, 2, 3)]]
    for try_number in range(1, tries + 1):
        order += [f"==> train (try {try_number}) <==", *[("train", try_number, i) for i in range(1, train_lines + 1)]]
    return order


def test_a_failing_run_shows_each_line_once_in_order_while_it_runs_and_ends_with_why(airflow):
    api = Airflow(airflow.url, USER, PASSWORD, DAG_ID)
    run_id = api.trigger({"lines": 10, "every": 1, "code": 3})
    shown, started = [], time.monotonic()
    with pytest.raises(TriggerError) as failed:
        follow_logs(
            api,
            run_id,
            timeout=300,
            every=2,
            say=lambda text: shown.extend((time.time(), line) for line in text.splitlines()),
        )
    minutes = (time.monotonic() - started) / 60
    lines = [line for _, line in shown]
    assert blocks(lines) == expected(train_lines=10, tries=2), "\n".join(lines)
    assert "train (try 1) failed: exit code 3" in lines and "train (try 2) failed: exit code 3" in lines
    assert str(failed.value) == f"run {run_id} failed: step train failed: exit code 3"  # the CLI's last line

    # While the last try ran (10 s), its first lines were already on the screen: a margin for a loaded machine.
    task = api.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/train")
    ended = datetime.fromisoformat(task["end_date"]).timestamp()
    early = [at for at, line in shown if NUMBERED.search(line) and " of try 2 " in line and at < ended]
    assert len(early) >= 3, (len(early), task["end_date"])

    latency = [at - float(NUMBERED.search(line)[4]) for at, line in shown if NUMBERED.search(line) and "train" in line]
    print(
        f"{airflow.line}: log latency median {statistics.median(latency):.1f} s, max {max(latency):.1f} s "
        f"(polling every 2 s); {api.requests} requests in {minutes:.1f} min: {api.requests / minutes:.0f} per minute"
    )
    assert max(latency) < 15

    # Read again at once (`make logs RUN=...`): the same lines, so the stream lost and repeated none.
    again = cli(airflow, "logs", run_id)
    assert again.returncode == 1 and blocks(again.stdout.splitlines()) == expected(train_lines=10, tries=2)
    assert again.stderr.splitlines()[-1] == f"logs: run {run_id} failed: step train failed: exit code 3"


def test_a_run_that_succeeds_exits_0_and_is_the_last_run(airflow):
    waited = cli(airflow, "trigger", "--wait", "--poll", "1", "--conf", '{"lines": 2, "every": 0, "code": 0}')
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    assert blocks(waited.stdout.splitlines()) == expected(train_lines=2, tries=1)
    run_id = waited.stdout.split()[3]
    assert "  train: success" in waited.stdout and f"Run {run_id}: success" in waited.stdout
    last = make(airflow, "logs", "STEP=train")  # no run id: the last run
    assert last.returncode == 0 and last.stdout.splitlines()[0] == f"{DAG_ID} run {run_id}"
    assert blocks(last.stdout.splitlines()) == expected(train_lines=2, tries=1)[4:]


def test_a_run_or_step_that_does_not_exist_is_said_plainly(airflow):
    missing = cli(airflow, "logs", "manual__no-such-run")
    assert missing.returncode == 1
    assert make(airflow, "logs", "RUN=manual__no-such-run").stderr.startswith(missing.stderr)
    assert missing.stderr == f"logs: Airflow has no run 'manual__no-such-run' of {DAG_ID}\n"
    step = cli(airflow, "logs", "manual__no-such-run", "--step", "evaluate")
    assert step.returncode == 1 and step.stderr == "logs: no step 'evaluate'; the steps are: prepare, train\n"


def test_the_job_readmes_recorded_run_is_what_make_trigger_prints(airflow):
    """The job README shows a followed run: each of its lines (run ids, times and addresses aside) is
    printed, in that order, by `make trigger WAIT=1` on the same demo run."""
    readme = (airflow.repo / "README.md").read_text()
    recorded = readme.split("$ make trigger WAIT=1\n", 1)[1].split("```", 1)[0].splitlines()
    followed = make(airflow, "trigger", "WAIT=1", 'CONF={"lines": 3, "every": 1, "code": 3}')
    assert followed.returncode == 2
    printed = iter(same_shape(followed.stdout + followed.stderr))
    missing = [line for line in same_shape("\n".join(recorded)) if line != "..." and line not in printed]
    assert missing == [], followed.stdout + followed.stderr


def same_shape(text):
    """Lines with what differs from run to run (run ids, times, addresses, how each Airflow line starts a
    log line: "20:25:49 " on 3, "[2026-12-04T20:25:49.652+0000] {subprocess.py:106} INFO - " on 2) made alike."""
    text = re.sub(r"http://127\.0\.0\.1:\d+/\S*", "<page>", text)
    text = re.sub(r"manual__[\w%:.+-]+", "<run>", text)
    text = re.sub(r"^(\[[^]]+\] \{[^}]+\} [A-Z]+ - |\d\d:\d\d:\d\d )", "<time> ", text, flags=re.M)
    return re.sub(r" at \d+\.\d+", " at <when>", text).splitlines()


def test_make_serve_checks_the_form_then_starts_the_serving_dag_and_says_why_a_deploy_failed(airflow):
    refused = make(airflow, "serve", "MODEL=s3://bucket/model")
    assert refused.returncode != 0 and 'model_uri: "s3://bucket/model" is not an MLflow model URI' in refused.stderr
    api = Airflow(airflow.url, USER, PASSWORD, f"{DAG_ID}-serve")
    wait_until(lambda: api.request("GET", f"/dags/{DAG_ID}-serve"), timeout=120)
    served = make(airflow, "serve", "MODEL=runs:/0123456789abcdef/model", "WAIT=1")
    said = served.stdout + served.stderr
    assert served.returncode != 0 and f"Started {DAG_ID}-serve run" in said and "(deploy)" in said, said
    assert "  choose: success" in said and "  stop: skipped" in said, said
    # No cluster here: the kubernetes client's own words ("Service host/port is not set." on Airflow 3, the
    # exception raised while handling it, "Invalid kube-config file. No configuration found.", on Airflow 2).
    assert "  deploy: failed" in said and "step deploy failed: ConfigException: " in served.stderr, said
