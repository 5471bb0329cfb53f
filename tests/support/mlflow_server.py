"""A real MLflow tracking server with users (`--app-name basic-auth`), standing in for the
platform's: on a loopback port, runs in sqlite, artifacts in a folder, both under `folder`.
The admin creates one user for the job, as the platform team would for a job's Secret."""

import base64
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from support.commands import wait_until
from support.engines import free_port
from support.venvs import ensure_venv

MLFLOW_VERSION = "3.17.2"  # the newest whose packages are all on PyPI (3.18.0 lacks mlflow-tracing)
ADMIN = "admin"


class MlflowServer:
    def __init__(self, folder, user="air-liquide-bot", password="mlfl0w-S3cret!/42"):
        self.folder, self.user, self.password = Path(folder), user, password
        self.admin_password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = self.folder / "server.log"
        self.process = None
        self.user_created = False

    def start(self, timeout=180):
        return self.launch().ready(timeout)

    def launch(self):
        """Start the server and return at once: it takes about 30 s to answer (ready() waits for it)."""
        python = ensure_venv(f"mlflow-server-{MLFLOW_VERSION}", [f"mlflow[auth]=={MLFLOW_VERSION}"])
        self.folder.mkdir(parents=True, exist_ok=True)
        # The auth app keeps its users in a database of its own, named in this file.
        auth_config = self.folder / "basic_auth.ini"
        auth_config.write_text(
            f"""[mlflow]
default_permission = READ
database_uri = sqlite:///{self.folder / "auth.db"}
admin_username = {ADMIN}
admin_password = {self.admin_password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""
        )
        env = {
            **os.environ,
            "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",  # it starts uvicorn by name
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }
        command = [python.parent / "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", "1"]
        command += ["--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}"]
        command += ["--artifacts-destination", str(self.folder / "artifacts")]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(part) for part in command], stdout=log, stderr=log, env=env, cwd=self.folder
            )
        return self

    def ready(self, timeout=180):
        """Wait for /health, then create the job's user (once); the server is stopped if it never answers."""
        if self.user_created:
            return self
        try:
            wait_until(lambda: self.process.poll() is not None or self.healthy(), timeout=timeout)
        except TimeoutError as error:
            self.stop()
            raise AssertionError(f"the MLflow server did not answer /health: {error}\n{self.server_log()}") from None
        if self.process.poll() is not None:
            raise AssertionError(f"the MLflow server exited {self.process.returncode}\n{self.server_log()}")
        self.api("POST", "users/create", {"username": self.user, "password": self.password}, as_admin=True)
        self.cheapen_password_checks()
        self.user_created = True
        return self

    def cheapen_password_checks(self):
        """The auth app checks every request's password against its scrypt hash: about 1.5 s each on two busy
        cores, and a step makes a dozen requests. The same passwords get a cheap PBKDF2 hash, in the format
        of werkzeug, which the server uses to check both."""
        with sqlite3.connect(self.folder / "auth.db") as database:
            for user, password in [(ADMIN, self.admin_password), (self.user, self.password)]:
                salt = secrets.token_hex(8)
                digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000).hex()
                updated = database.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    (f"pbkdf2:sha256:1000${salt}${digest}", user),
                )
                assert updated.rowcount == 1, f"no user {user} in the auth database"
        self.api("POST", "experiments/search", {"max_results": 1})  # the job's user still logs in

    def healthy(self):
        with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as response:
            return response.status == 200

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def server_log(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def env(self):
        """What a job's pod gets: the URI from the DAG, the user and password from the Secret."""
        return {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_TRACKING_USERNAME": self.user,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }

    def api(self, method, path, body=None, as_admin=False):
        """A REST call below /api/2.0/mlflow/, as the job's user (or the admin); the JSON answer."""
        user, password = (ADMIN, self.admin_password) if as_admin else (self.user, self.password)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.uri}/api/2.0/mlflow/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read().decode(errors='replace')}") from None

    def experiment_id(self, name):
        """The id of the experiment with this name; None if there is none."""
        found = self.api("POST", "experiments/search", {"filter": f"name = '{name}'", "max_results": 10})
        experiments = found.get("experiments", [])
        return experiments[0]["experiment_id"] if experiments else None

    def runs(self, experiment, airflow_run_id=None):
        """The runs of an experiment (by name), with their data; only those of one Airflow run if given."""
        experiment_id = self.experiment_id(experiment)
        if experiment_id is None:
            return []
        body = {"experiment_ids": [experiment_id], "max_results": 1000}
        if airflow_run_id is not None:
            body["filter"] = f"tags.airflow_run_id = '{airflow_run_id}'"
        return self.api("POST", "runs/search", body).get("runs", [])

    def logged_models(self, experiment):
        """The models logged in an experiment (MLflow 3 keeps them apart from run artifacts)."""
        experiment_id = self.experiment_id(experiment)
        body = {"experiment_ids": [experiment_id], "max_results": 100}
        return self.api("POST", "logged-models/search", body).get("models", [])

    def artifacts(self, run_id, path=""):
        """The paths of a run's artifacts directly under `path`."""
        listing = self.api("GET", f"artifacts/list?run_id={run_id}&path={urllib.parse.quote(path)}")
        return [entry["path"] for entry in listing.get("files", [])]


def params(run):
    return {param["key"]: param["value"] for param in run["data"].get("params", [])}


def metrics(run):
    return {metric["key"]: metric["value"] for metric in run["data"].get("metrics", [])}


def tags(run):
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}
