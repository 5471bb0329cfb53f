"""Word when a run fails (the `notify` answer), in a real Airflow 3 and 2 standalone: a step that
fails after its last retry sends one message (a mail to a real SMTP server on loopback, or a
Slack-format webhook to a local HTTP receiver) saying the DAG, the step, the try, why, and links
to the run and the log; a first try that is retried, and a run that succeeds, send nothing.

The generated DAGs run as they are, but for a shorter retry delay (a hand edit). Their pods cannot
start here (no cluster), so each step fails for real, with the error Airflow raises outside one.
Why a pod failed (OOMKilled, exit code) is read from the provider's own error, tested last."""

import json
import os
import re
import threading
import time
import urllib.parse
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from confiance_job.trigger import Airflow
from support.airflow_server import PASSWORD, USER, Airflow2Standalone, AirflowServer
from support.commands import run, wait_until
from support.engines import free_port
from support.template import bake, with_short_retry_delay
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("airflow-logs")]

EMAILS = ["team-ml@example.org", "jane.doe@example.org"]
WEBHOOK_KEY = "hooks/k3y-0f-the-channel"  # the secret part of a Mattermost webhook URL
NO_CLUSTER = "Service host/port is not set."  # what the pod operator raises outside a cluster

# A DAG that succeeds, whose step has the mail job's failure callback: a run that succeeds sends nothing.
QUIET_DAG = """
from datetime import datetime, timezone
import importlib.util, pathlib

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:
    from airflow.operators.bash import BashOperator

spec = importlib.util.spec_from_file_location("mailjob_dag", pathlib.Path(__file__).with_name("mailjob.py"))
mailjob = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mailjob)

with DAG(dag_id="quiet", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False,
         is_paused_upon_creation=False):
    BashOperator(task_id="works", bash_command="echo fine", on_failure_callback=mailjob.tell_failure)
"""


class Mailbox:
    """An SMTP server on loopback that keeps every mail it receives."""

    def __init__(self):
        self.mails = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler name
        self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=email_policy)))
        return "250 OK"


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint on loopback, answering as Mattermost does; keeps (path, JSON body)."""

    received = []

    def do_POST(self):  # noqa: N802 - http.server's handler name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def bake_job(root, name, notify):
    """A job repo as baked, its DAG retrying after 1 s instead of 2 min; returns its DAG file's text."""
    repo = bake(root / "jobs", project_name=name, steps="prepare,train", notify=notify)
    return repo, with_short_retry_delay((repo / "dags" / f"{name}.py").read_text())


@pytest.fixture(scope="module", params=["airflow3", "airflow2"])
def airflow(request, tmp_path_factory):
    """One Airflow standalone of this line, its SMTP and webhook connections pointing at loopback."""
    line = request.param
    python = ensure_venv(line, AIRFLOW_LINES[line] + AIRFLOW_TOOLS)
    root = tmp_path_factory.mktemp(f"notify-{line}")
    (root / "dags").mkdir()
    repos = {}
    for name, notify in (("mailjob", ",".join(EMAILS)), ("hookjob", "webhook")):
        repos[name], dag = bake_job(root, name, notify)
        (root / "dags" / f"{name}.py").write_text(dag)
    (root / "dags" / "quiet.py").write_text(QUIET_DAG)

    mailbox = Mailbox()
    mailbox.controller.start()
    Receiver.received = []
    receiver = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    server = (AirflowServer if line == "airflow3" else Airflow2Standalone)(
        python.parent / "airflow", root / "airflow", root / "dags"
    )
    # What the platform's Airflow holds (Admin > Connections), as the job README asks for.
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": mailbox.controller.port}
    smtp["extra"] = {"from_email": "airflow@example.org", "disable_ssl": True, "disable_tls": True}
    server.env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(smtp)
    webhook_url = f"http://127.0.0.1:{receiver.server_port}/{WEBHOOK_KEY}"
    server.env["AIRFLOW_CONN_NOTIFY_HOOKJOB"] = json.dumps({"conn_type": "slackwebhook", "password": webhook_url})
    try:
        server.start()
        api = Airflow(server.url, USER, PASSWORD, "mailjob")
        for dag_id in ("mailjob", "hookjob", "quiet"):
            wait_until(lambda dag_id=dag_id: api.request("GET", f"/dags/{dag_id}"), timeout=180)
        yield SimpleNamespace(
            url=server.url, line=line, mails=mailbox.mails, posts=Receiver.received, root=root, repos=repos
        )
    finally:
        server.stop()
        receiver.shutdown()
        mailbox.controller.stop()


def finished_run(airflow, dag_id, conf=None):
    """Trigger a run and wait for its end: (run id, state)."""
    api = Airflow(airflow.url, USER, PASSWORD, dag_id)
    run_id = api.trigger(conf or {})
    state = wait_until(lambda: next(iter({api.run_state(run_id)[0]} & {"success", "failed"}), None), timeout=300)
    return run_id, state


def expected_lines(airflow, dag_id, run_id):
    """The three lines of the message for step prepare failing at its second try, outside a cluster."""
    first = f"{dag_id}: step prepare failed (try 2): {NO_CLUSTER}"
    quoted = urllib.parse.quote(run_id, safe="")
    if airflow.line == "airflow3":
        run_page = f"{airflow.url}/dags/{dag_id}/runs/{quoted}"
        return [first, f"Run: {run_page}", f"Log: {run_page}/tasks/prepare?try_number=2"]
    grid = f"{airflow.url}/dags/{dag_id}/grid?dag_run_id={quoted}"  # and the run's date, base_date=...
    grid = re.escape(grid)
    return [
        first,
        re.compile(rf"Run: {grid}&base_date=[^&]+"),
        re.compile(rf"Log: {grid}&task_id=prepare&base_date=[^&]+&tab=logs"),
    ]


def matches(lines, expected):
    """Each line equals its expected text or matches its pattern (the parts a run's date makes vary)."""
    assert len(lines) == len(expected), lines
    for line, wanted in zip(lines, expected, strict=True):
        if isinstance(wanted, re.Pattern):
            assert wanted.fullmatch(line), (line, wanted)
        else:
            assert line == wanted


def test_a_step_that_fails_after_its_retry_sends_one_mail_to_every_address(airflow):
    before = len(airflow.mails)
    run_id, state = finished_run(airflow, "mailjob")
    assert state == "failed"
    wait_until(lambda: len(airflow.mails) > before, timeout=60)
    time.sleep(3)  # a second mail (the first try, or step train) would come now
    (recipients, mail), *others = airflow.mails[before:]
    assert others == []
    assert sorted(recipients) == sorted(EMAILS) and mail["From"] == "airflow@example.org"
    lines = mail.get_body(("html",)).get_content().strip().split("<br>")
    matches([line.replace("&amp;", "&") for line in lines], expected_lines(airflow, "mailjob", run_id))
    assert mail["Subject"] == lines[0]


def test_a_webhook_message_says_the_same_and_its_key_stays_out_of_the_repo(airflow):
    before = len(airflow.posts)
    run_id, state = finished_run(airflow, "hookjob")
    assert state == "failed"
    wait_until(lambda: len(airflow.posts) > before, timeout=60)
    time.sleep(3)
    (path, body), *others = airflow.posts[before:]
    assert others == [] and path == f"/{WEBHOOK_KEY}"
    matches(body["text"].split("\n"), expected_lines(airflow, "hookjob", run_id))
    # The connection holds the URL; the DAG names the connection only.
    repo = airflow.repos["hookjob"]
    assert 'NOTIFY_CONNECTION = "notify_hookjob"' in (repo / "dags" / "hookjob.py").read_text()
    leaked = run(["grep", "-rl", "k3y-0f", "."], cwd=repo, check=False)
    assert leaked.stdout == ""


def test_a_run_that_succeeds_sends_nothing(airflow):
    mails, posts = len(airflow.mails), len(airflow.posts)
    _, state = finished_run(airflow, "quiet")
    assert state == "success"
    time.sleep(3)
    assert (len(airflow.mails), len(airflow.posts)) == (mails, posts)


POD_ERROR = """
import importlib.util, json, sys
from kubernetes.client import models as k8s

spec = importlib.util.spec_from_file_location("job", sys.argv[1])
job = importlib.util.module_from_spec(spec)
spec.loader.exec_module(job)

def ended(reason, exit_code):  # the pod as the cluster reports it, in the provider's error (cleanup)
    state = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(reason=reason, exit_code=exit_code))
    status = k8s.V1PodStatus(phase="Failed", container_statuses=[k8s.V1ContainerStatus(
        name="base", state=state, image="x", image_id="", ready=False, restart_count=0)])
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="mailjob-train-x7k2"), status=status)
    return Exception(f"Pod mailjob-train-x7k2 returned a failure.\\nremote_pod: {pod}")

class TaskInstance:
    task_id, try_number, log_url = "train", 2, "http://airflow/dags/mailjob/runs/r1/tasks/train?try_number=2"

errors = {"oom": ended("OOMKilled", 137), "code": ended("Error", 3), "other": KeyError("model.pkl")}
print(json.dumps({name: job.failure_message({"ti": TaskInstance(), "exception": error})
                  for name, error in errors.items()}))
"""


@pytest.mark.parametrize("line", ["airflow3", "airflow2"])
def test_the_message_says_why_a_pod_failed(line, tmp_path):
    python = ensure_venv(line, AIRFLOW_LINES[line] + AIRFLOW_TOOLS)
    repo = bake(tmp_path, project_name="mailjob", steps="prepare,train", notify=EMAILS[0])
    script = tmp_path / "pod_error.py"
    script.write_text(POD_ERROR)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    said = json.loads(run([python, script, repo / "dags" / "mailjob.py"], env=env).stdout)
    first = "mailjob: step train failed (try 2): "
    oom = "out of memory (OOMKilled): the step used more than its memory limit; give it more memory"
    assert said["oom"][0] == first + oom
    assert said["code"][0] == first + "exit code 3"
    assert said["other"][0] == first + "'model.pkl'"
    log = "http://airflow/dags/mailjob/runs/r1/tasks/train?try_number=2"
    assert said["code"][1:] == ["Run: http://airflow/dags/mailjob/runs/r1", f"Log: {log}"]
