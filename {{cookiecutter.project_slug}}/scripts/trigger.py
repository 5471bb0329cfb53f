"""Start a run of the DAG from a terminal or a script, like the Trigger button does.

    export AIRFLOW_URL=https://airflow.example AIRFLOW_USER=me AIRFLOW_PASSWORD=...
    make trigger TAG=0.2.0 COMMAND="python main.py {{ cookiecutter.steps.split(',')[0].strip() }} --dry-run"
    python scripts/trigger.py --tag 0.2.0 --env EPOCHS=3 --cpu 4 --conf '{"memory": "16Gi"}'

Works with Airflow 3 (REST API v2) and Airflow 2 (v1). Only the standard library:
no need for `make dev`. Prints the run's address, or why Airflow refused the run.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DAG_ID = "{{ cookiecutter.project_slug }}"


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
    """The REST API of Airflow 3 (token login, /api/v2) or Airflow 2 (basic auth, /api/v1)."""

    def __init__(self, url, user, password):
        self.url = url.rstrip("/")
        status, body = call("POST", f"{self.url}/auth/token", {"username": user, "password": password})
        if status in (200, 201):
            self.api, self.headers = f"{self.url}/api/v2", {"Authorization": f"Bearer {body['access_token']}"}
        elif status in (401, 403):
            raise TriggerError(f"Airflow refused the user {user!r}: check AIRFLOW_USER and AIRFLOW_PASSWORD")
        else:  # no token endpoint: Airflow 2
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.api, self.headers = f"{self.url}/api/v1", {"Authorization": f"Basic {token}"}

    def request(self, method, path, body=None):
        status, answer = call(method, self.api + path, body, self.headers)
        if status in (401, 403):
            hint = "" if self.api.endswith("/v2") else " (on Airflow 2, [api] auth_backends must include basic_auth)"
            raise TriggerError(f"Airflow refused the credentials: check AIRFLOW_USER and AIRFLOW_PASSWORD{hint}")
        if status == 404:
            raise TriggerError(f"Airflow has no DAG {DAG_ID!r}: was a release tag pushed, and has it synced?")
        if status >= 400:
            detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
            raise TriggerError(f"Airflow refused the run ({status}): {detail}")
        return answer

    def form_fields(self):
        return set(self.request("GET", f"/dags/{DAG_ID}/details").get("params") or {})

    def trigger(self, conf):
        body = {"conf": conf}
        if self.api.endswith("/v2"):
            body["logical_date"] = None  # "now", as the Trigger button does
        return self.request("POST", f"/dags/{DAG_ID}/dagRuns", body)["dag_run_id"]

    def run_page(self, run_id):
        quoted = urllib.parse.quote(run_id, safe="")
        if self.api.endswith("/v2"):
            return f"{self.url}/dags/{DAG_ID}/runs/{quoted}"
        return f"{self.url}/dags/{DAG_ID}/grid?dag_run_id={quoted}"


def build_conf(args):
    """The form values: --conf first, then the specific options on top."""
    try:
        conf = json.loads(args.conf or "{}")
    except json.JSONDecodeError as error:
        raise TriggerError(f"--conf is not valid JSON: {error}") from None
    if args.tag:
        conf["image_tag"] = args.tag.removeprefix("v")
    if args.command:
        conf["command"] = args.command
    if args.env:
        pairs = [item.partition("=") for item in args.env]
        if any(not sep for _, sep, _ in pairs):
            raise TriggerError("--env takes NAME=VALUE")
        conf["env"] = {**conf.get("env", {}), **{name: value for name, _, value in pairs}}
    for field in ("cpu", "memory"):
        if getattr(args, field):
            conf[field] = getattr(args, field)
    return conf


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="image tag to run, e.g. 0.2.0 (default: the last release)")
    parser.add_argument("--command", help="shell command run instead of the step's default (one-step jobs)")
    parser.add_argument("--env", action="append", metavar="NAME=VALUE", help="extra environment variable")
    parser.add_argument("--cpu", help="CPUs for each pod, e.g. 4")
    parser.add_argument("--memory", help="memory for each pod, e.g. 16Gi")
    parser.add_argument("--conf", help="other form fields, as JSON")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    missing = [name for name in ("AIRFLOW_URL", "AIRFLOW_USER", "AIRFLOW_PASSWORD") if not os.environ.get(name)]
    try:
        if missing:
            raise TriggerError(f"set {', '.join(missing)} (the Airflow address and your Airflow login)")
        conf = build_conf(args)
        airflow = Airflow(os.environ["AIRFLOW_URL"], os.environ["AIRFLOW_USER"], os.environ["AIRFLOW_PASSWORD"])
        # Airflow accepts unknown fields silently: catch typos here.
        fields = airflow.form_fields()
        if "command" in conf and "command" not in fields:
            example = json.dumps({min(f for f in fields if f.endswith("_command")): conf["command"]})
            raise TriggerError(f"this job has several steps: give a step its command with --conf '{example}'")
        unknown = ", ".join(sorted(set(conf) - fields))
        if unknown:
            raise TriggerError(f"the form has no field {unknown}; it has: {', '.join(sorted(fields))}")
        run_id = airflow.trigger(conf)
    except TriggerError as error:
        print(f"trigger: {error}", file=sys.stderr)
        return 1
    print(f"Started {DAG_ID} run {run_id}\n{airflow.run_page(run_id)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
