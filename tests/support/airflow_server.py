"""A real Airflow 3 (standalone, SQLite) whose DAGs folder follows the airflow-dags
repository the way the platform's git-sync does: a clone, pulled periodically."""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from support.commands import run, wait_until
from support.engines import free_port

USER, PASSWORD = "admin", "admin-Pa55"
SYNC_PERIOD = 2  # seconds; the platform syncs every 60


class GitSync(threading.Thread):
    """Keeps a clone of the dags repository up to date, like the git-sync sidecar."""

    def __init__(self, remote, folder, branch="master"):
        super().__init__(daemon=True)
        self.folder, self.branch = Path(folder), branch
        run(["git", "clone", "-q", "--branch", branch, remote, folder])
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(SYNC_PERIOD):
            subprocess.run(["git", "-C", str(self.folder), "pull", "-q", "--ff-only"], capture_output=True)

    def stop(self):
        self.stopped.set()


def launch(command, env, log_file):
    """An Airflow command in a process group of its own (stopped as a whole), its output in log_file."""
    return subprocess.Popen(
        [str(part) for part in command],
        env=env,
        stdout=open(log_file, "ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def health_of(url, parts):
    """Whether Airflow's health answer at url says each of these parts is healthy."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            health = json.load(response)
    except OSError:
        return False
    return all((health.get(part) or {}).get("status") == "healthy" for part in parts)


class AirflowServer:
    def __init__(self, airflow_bin, home, dags_folder):
        self.airflow_bin, self.home = Path(airflow_bin), Path(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home.mkdir(parents=True, exist_ok=True)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD}))  # the auth manager keeps a password it finds here
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("KUBERNETES_SERVICE")}
        self.env.update(
            {
                "PATH": f"{self.airflow_bin.parent}{os.pathsep}{os.environ['PATH']}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": "confiance-job-tests-" + "0" * 32,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            }
        )
        self.process = None
        self.start_seconds = None

    def start(self, timeout=240):
        started = time.perf_counter()
        self.process = launch([self.airflow_bin, "standalone"], self.env, self.home / "standalone.log")
        state = wait_until(lambda: "exited" if self.process.poll() is not None else self.healthy(), timeout)
        if state == "exited":
            raise RuntimeError(f"Airflow exited while starting; see {self.home / 'standalone.log'}")
        self.start_seconds = time.perf_counter() - started
        return self

    def healthy(self):
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return health_of(f"{self.url}/api/v2/monitor/health", parts)

    def memory_mib(self):
        """Resident memory of every process of this Airflow."""
        pids = subprocess.run(["ps", "-o", "pid=", "--sid", str(self.process.pid)], capture_output=True, text=True)
        total_kib = 0
        for pid in pids.stdout.split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if "VmRSS:" in status:
                total_kib += int(status.split("VmRSS:")[1].split()[0])
        return total_kib / 1024

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # standalone's own shutdown stops its components
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # whatever did not stop in time
            except ProcessLookupError:
                pass


class Airflow2Server:
    """Airflow 2's webserver and REST API v1 (basic auth), the DAGs registered without a scheduler:
    enough for runs to be accepted or refused, which is what a trigger client meets."""

    def __init__(self, airflow_bin, home, dags_folder):
        self.airflow_bin, self.home = Path(airflow_bin), Path(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("KUBERNETES_SERVICE")}
        self.env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session",
                "AIRFLOW__WEBSERVER__WORKERS": "1",
                "AIRFLOW__WEBSERVER__SECRET_KEY": "confiance-job-tests",
            }
        )
        self.process = None

    def airflow(self, *args):
        run([self.airflow_bin, *args], env=self.env, timeout=300)

    def start(self, timeout=180):
        self.airflow("db", "migrate")
        self.airflow("users", "create", "-u", USER, "-p", PASSWORD, "-r", "Admin", "-f", "A", "-l", "B", "-e", "a@b.c")
        self.airflow("dags", "reserialize")  # what the scheduler's DAG processor would store
        command = [self.airflow_bin, "webserver", "--hostname", "127.0.0.1", "--port", self.port]
        self.process = launch(command, self.env, self.home / "webserver.log")
        wait_until(lambda: urllib.request.urlopen(f"{self.url}/health", timeout=5).close() or True, timeout)
        return self

    def stop(self):
        if self.process:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)


class Airflow2Standalone(Airflow2Server):
    """Airflow 2's `airflow standalone`: webserver, scheduler and triggerer, so that tasks really run."""

    def start(self, timeout=240):
        self.env.update(
            {
                "PATH": f"{self.airflow_bin.parent}{os.pathsep}{os.environ['PATH']}",  # standalone runs `airflow ...`
                "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.port),
                "AIRFLOW__WEBSERVER__BASE_URL": self.url,  # the links Airflow writes (log_url) point here
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
            }
        )
        self.airflow("db", "migrate")
        self.airflow("users", "create", "-u", USER, "-p", PASSWORD, "-r", "Admin", "-f", "A", "-l", "B", "-e", "a@b.c")
        self.process = launch([self.airflow_bin, "standalone"], self.env, self.home / "standalone.log")
        wait_until(self.healthy, timeout)
        return self

    def healthy(self):
        return health_of(f"{self.url}/health", ("metadatabase", "scheduler"))
