"""Start a run of a DAG from a terminal or a script, as the Trigger button does.

Works with Airflow 3 (REST API v2) and Airflow 2 (v1), with the standard library only.
"""

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

from .form import as_form_sends_it, form_problems
from .rules import image_tag


class TriggerError(Exception):
    """Something the user can fix: the message says what."""


def call(method, url, body=None, headers=None):
    """One JSON request; returns (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            return error.code, json.loads(text)
        except json.JSONDecodeError:
            return error.code, text
    except urllib.error.URLError as error:
        raise TriggerError(f"cannot reach Airflow at {url}: {error.reason}") from None


class Airflow:
    """The REST API of Airflow 3 (token login, /api/v2) or Airflow 2 (basic auth, /api/v1), for one DAG."""

    def __init__(self, url, user, password, dag_id):
        self.url, self.dag_id = url.rstrip("/"), dag_id
        status, body = call("POST", f"{self.url}/auth/token", {"username": user, "password": password})
        if status in (200, 201):
            self.api, self.headers = f"{self.url}/api/v2", {"Authorization": f"Bearer {body['access_token']}"}
        elif status in (401, 403):
            raise TriggerError(f"Airflow refused the user {user!r}: check AIRFLOW_USER and AIRFLOW_PASSWORD")
        else:  # no token endpoint: Airflow 2
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.api, self.headers = f"{self.url}/api/v1", {"Authorization": f"Basic {token}"}

    @property
    def is_v2(self):
        return self.api.endswith("/v2")

    def request(self, method, path, body=None, missing=None):
        """The answer; TriggerError saying what to fix (`missing`: what a 404 means, if not a missing DAG)."""
        self.requests = getattr(self, "requests", 0) + 1  # counted to measure what following a run costs
        status, answer = call(method, self.api + path, body, self.headers)
        if status in (401, 403):
            hint = "" if self.is_v2 else " (on Airflow 2, [api] auth_backends must include basic_auth)"
            raise TriggerError(f"Airflow refused the credentials: check AIRFLOW_USER and AIRFLOW_PASSWORD{hint}")
        if status == 404 and missing:
            raise TriggerError(missing)
        if status == 404:
            raise TriggerError(f"Airflow has no DAG {self.dag_id!r}: was a release tag pushed, and has it synced?")
        if status >= 400:
            detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
            raise TriggerError(f"Airflow refused the run ({status}): {detail}")
        return answer

    def form_schemas(self):
        """{field: its JSON schema}: the DAG's Trigger form, as Airflow serves it (2 and 3 alike)."""
        params = self.request("GET", f"/dags/{self.dag_id}/details").get("params") or {}
        return {name: (param.get("schema") or {}) if isinstance(param, dict) else {} for name, param in params.items()}

    def trigger(self, conf):
        body = {"conf": conf}
        if self.is_v2:
            body["logical_date"] = None  # "now", as the Trigger button does
        return self.request("POST", f"/dags/{self.dag_id}/dagRuns", body)["dag_run_id"]

    def run_page(self, run_id):
        quoted = urllib.parse.quote(run_id, safe="")
        if self.is_v2:
            return f"{self.url}/dags/{self.dag_id}/runs/{quoted}"
        return f"{self.url}/dags/{self.dag_id}/grid?dag_run_id={quoted}"

    def log_page(self, run_id, step, map_index=-1):
        """Where a person reads a step's log in the UI (map_index: one pod of a sweep)."""
        quoted = urllib.parse.quote(run_id, safe="")
        mapped = map_index is not None and map_index >= 0
        if self.is_v2:
            page = f"{self.url}/dags/{self.dag_id}/runs/{quoted}/tasks/{step}"
            return page + (f"/mapped/{map_index}" if mapped else "")
        page = f"{self.url}/dags/{self.dag_id}/grid?dag_run_id={quoted}&task_id={step}"
        return page + (f"&map_index={map_index}" if mapped else "") + "&tab=logs"

    def run_state(self, run_id):
        """(the run's state, {step: state}) as Airflow reports them now."""
        path = f"/dags/{self.dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        run = self.request("GET", path)
        tasks = self.request("GET", f"{path}/taskInstances")["task_instances"]
        return run["state"], {task["task_id"]: task["state"] or "waiting" for task in tasks}


def build_conf(conf_json=None, tag=None, command=None, env=None, cpu=None, memory=None):
    """The form values: the JSON first, then the specific options on top."""
    try:
        conf = json.loads(conf_json or "{}")
    except json.JSONDecodeError as error:
        raise TriggerError(f"--conf is not valid JSON: {error}") from None
    if tag:
        conf["image_tag"] = image_tag(tag)
    if command:
        conf["command"] = command
    if env:
        pairs = [item.partition("=") for item in env]
        if any(not sep for _, sep, _ in pairs):
            raise TriggerError("--env takes NAME=VALUE")
        conf["env"] = {**conf.get("env", {}), **{name: value for name, _, value in pairs}}
    conf.update({name: value for name, value in (("cpu", cpu), ("memory", memory)) if value})
    return conf


def checked_form(conf, schemas):
    """The conf as the form would send it; TriggerError naming each bad field, before any run starts.
    (Airflow accepts unknown fields silently: typos, and `command` on a job of several steps, are caught here.)"""
    if "command" in conf and "command" not in schemas:
        example = json.dumps({min(f for f in schemas if f.endswith("_command")): conf["command"]})
        raise TriggerError(f"this job has several steps: give a step its command with --conf '{example}'")
    conf = as_form_sends_it(conf, schemas)
    problems = form_problems(conf, schemas)
    if problems:
        raise TriggerError("the Trigger form would refuse these values:\n" + "\n".join(f"  {p}" for p in problems))
    return conf


FINISHED = {"success", "failed"}


def follow(airflow, run_id, timeout, every=5.0, say=print):
    """Print each step's state as it changes until the run ends; TriggerError unless it succeeded.

    Gives up after `timeout` seconds (the run goes on in Airflow)."""
    deadline = time.monotonic() + timeout
    seen = {}
    while True:
        state, steps = airflow.run_state(run_id)
        for step, step_state in steps.items():
            if seen.get(step) != step_state:
                say(f"  {step}: {step_state}")
                seen[step] = step_state
        if state in FINISHED:
            break
        if time.monotonic() > deadline:
            raise TriggerError(
                f"run {run_id} is still {state} after {timeout:.0f} s; it goes on in Airflow: "
                f"{airflow.run_page(run_id)}"
            )
        time.sleep(every)
    say(f"Run {run_id}: {state}\n{airflow.run_page(run_id)}")
    failed = [step for step, step_state in steps.items() if step_state == "failed"]
    for step in failed:
        say(f"  log of {step}: {airflow.log_page(run_id, step)}")
    if state != "success":
        raise TriggerError(f"run {run_id} failed" + (f": step {', '.join(failed)} failed" if failed else ""))
