"""The answers to the template's prompts: how each is read, and what is wrong with a set of them.

The template's Jinja filters read answers with the parsers here, and its pre-generation hook
prints `problems(answers)`: all of them at once, each with the field, the rule and a valid
example. A pure function of the answers, so every rule is tested without baking.
"""

from __future__ import annotations  # "str | None" on the Pythons the package supports (3.9)

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from .rules import (
    AIRFLOW_PROVIDERS,
    ENV_NAME_PATTERN,
    QUANTITY,
    RUN_ENV,
    SWEEP_AT_ONCE,
    SWEEP_ENV,
    SWEEP_MAX,
    VERSION,
    quantity_value,
    resource_problems,
)

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")
REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
GITLAB_PROJECT = re.compile(r"^[\w.-]+(/[\w.-]+)+$")
GIT_REF = re.compile(r"^[\w][\w./-]*$")
STEP = re.compile(r"^[a-z][a-z0-9_]*$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
ENV_NAME = re.compile(ENV_NAME_PATTERN)
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
# Set by the DAG for each run: the answers cannot choose them.
SCHEDULE_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
CRON_FIELDS = [  # (name, lowest, highest, names accepted instead of numbers)
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()),
    ("day of week", 0, 7, "SUN MON TUE WED THU FRI SAT".split()),
]
# A pod is named <slug>-<step>-<8 random chars>; Kubernetes allows 63.
MAX_POD_NAME_PREFIX = 63 - 9
MAX_SLUG = 40
# Step names become functions of main.py: they must not shadow its own names.
RESERVED_STEPS = {"argparse", "datetime", "json", "load_json", "log", "logging", "main", "os", "parse_args",
                  "save_json", "sys", "timezone"}  # fmt: skip
# Mounting the share here would hide the job's code or the system.
FORBIDDEN_MOUNTS = {"/", "/app", "/bin", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr", "/var"}
RESOURCE_KEYS = ("cpu", "memory", "gpus")
SERVING = ("none", "mlflow")
WEBHOOK_URL_REMOVED = "<a webhook URL, removed>"


# ---- Reading the answers (the template's Jinja filters use these) ----


def split_list(text):
    """'a, b ,c' -> ['a', 'b', 'c']; '' -> []."""
    return [item.strip() for item in str(text).split(",")] if str(text).strip() else []


def parse_range(text):
    """'2Gi/4Gi' -> ('2Gi', '4Gi'); '4' -> ('4', '4') (request = limit)."""
    request, _, limit = text.partition("/")
    return request.strip(), (limit or request).strip()


def parse_overrides(text, steps):
    """'train: memory=8Gi/16Gi gpus=2; predict: cpu=4' -> ({step: {key: value}}, [errors])."""
    overrides, errors = {}, []
    for part in filter(str.strip, str(text).split(";")):
        step, colon, settings = part.partition(":")
        step = step.strip()
        if not colon or step not in steps:
            errors.append(f"{part.strip()!r}: start with one of the steps ({', '.join(steps)}) and a colon")
            continue
        for setting in settings.split():
            key, equals, value = setting.partition("=")
            if not equals and overrides.get(step):  # "memory=8 GB": a space inside a value
                errors.append(f"{step}: {setting!r}: no space inside a value (8Gi, not 8 GB)")
            elif not equals or key not in RESOURCE_KEYS:
                errors.append(f"{step}: {setting!r} is not cpu=..., memory=... or gpus=...")
            elif key == "gpus":
                if value.isdigit():
                    overrides.setdefault(step, {})["gpus"] = int(value)
                else:
                    errors.append(f"{step}: gpus={value} is not a whole number")
            else:
                overrides.setdefault(step, {})[key] = parse_range(value)
    return overrides, errors


def step_resources(answers):
    """Each step's cpu and memory (request, limit) and GPU count, and what is wrong with step_resources.

    Every step starts from the cpu/memory answers; GPU steps get gpu_count GPUs;
    step_resources then changes single steps."""
    steps = split_list(answers["steps"])
    gpu_steps = split_list(answers["gpu_steps"]) if answers["use_gpu"] is True else []
    defaults = {
        "cpu": (str(answers["cpu_request"]), str(answers["cpu_limit"])),
        "memory": (str(answers["memory_request"]), str(answers["memory_limit"])),
    }
    gpu_count = int(answers["gpu_count"]) if str(answers["gpu_count"]).isdigit() else 1
    overrides, errors = parse_overrides(answers["step_resources"], steps)
    table = {}
    for step in steps:
        table[step] = {**defaults, "gpus": gpu_count if step in gpu_steps else 0, **overrides.get(step, {})}
        for kind in ("cpu", "memory"):
            if table[step][kind] != defaults[kind]:
                errors += resource_problems(step, kind, *table[step][kind])
    return {"table": table, "errors": errors}


def env_vars(text):
    """'A=1, B=x=y' -> ({'A': '1', 'B': 'x=y'}, [errors])."""
    env, errors = {}, []
    for item in split_list(text):
        name, equals, value = item.partition("=")
        if not equals or not ENV_NAME.match(name.strip()):
            errors.append(f"{item!r} is not NAME=value (NAME: letters, digits, '_', not starting with a digit)")
        else:
            env[name.strip()] = value.strip()
    return env, errors


def static_env(answers):
    """The environment every step gets: the job's name, its data folder, MLflow's server, then env_vars."""
    data_dir = f"{answers['nfs_mount_path']}/{answers['project_slug']}" if answers["use_nfs"] is True else "/data"
    env = {"JOB_NAME": answers["project_slug"], "DATA_DIR": data_dir}
    if str(answers.get("mlflow_tracking_uri", "")).strip():  # every step logs to the same server and experiment
        env["MLFLOW_TRACKING_URI"] = answers["mlflow_tracking_uri"].strip()
        env["MLFLOW_EXPERIMENT_NAME"] = answers["project_slug"]
    return {**env, **env_vars(answers["env_vars"])[0]}


def is_url(answer):
    """A URL, with its scheme or without (chat.example.org/hooks/...): an email address has no '/'."""
    return "://" in answer or "/" in answer


def notify(answers):
    """Who hears when a step fails after its last retry: {"emails": [...], "connection": "notify_<slug>"
    for a webhook kept in an Airflow connection, or "", "errors": [...]}. 'none' (or empty): nobody."""
    answer = str(answers.get("notify", "none")).strip()
    plan = {"emails": [], "connection": "", "errors": []}
    if answer.lower() in ("", "none"):
        return plan
    if answer.lower() == "webhook":
        plan["connection"] = "notify_" + answers["project_slug"].replace("-", "_")
    elif is_url(answer):
        plan["errors"].append(
            "a webhook URL holds its secret key, and answers are kept in the repo (.cruft.json): answer 'webhook', "
            "then keep the URL in Airflow (README: When a run fails)"
        )
    else:
        plan["emails"] = split_list(answer.replace(";", ","))
        plan["errors"] += [f"{email!r} is not an email address" for email in plan["emails"] if not EMAIL.match(email)]
    return plan


# ---- What is wrong with a set of answers ----


@dataclass(frozen=True)
class Problem:
    """One answer that cannot work: the field, what it expects, a valid example; `shown` is the answer
    as printed (None: a secret, never printed)."""

    field: str
    rule: str
    example: str = ""
    shown: str | None = None

    def __str__(self):
        answer = "<a URL>" if self.shown is None else self.shown
        lines = [f"  - {self.field} = {answer}", f"      expected: {self.rule}"]
        return "\n".join(lines + ([f"      example:  {self.example}"] if self.example else []))


class Checker:
    """Applies every rule to one set of answers; `found` lists the problems."""

    def __init__(self, answers):
        self.answers, self.found = answers, []

    def fail(self, field, rule, example):
        self.found.append(Problem(field, rule, example, repr(self.answers.get(field))))

    def check(self, field, pattern, rule, example, max_len=None):
        value = str(self.answers[field])
        if not pattern.match(value) or (max_len and len(value) > max_len):
            self.fail(field, rule, example)

    def check_slug(self):
        from slugify import slugify  # cookiecutter's own, as it made the slug

        slug, name = self.answers["project_slug"], self.answers["project_name"]
        if not slugify(name):
            self.fail("project_name", "a name with letters or digits (the short name is made from them)",
                      "Air Quality Forecast")  # fmt: skip
        rule = (f"lowercase letters, digits and '-', starting with a letter, at most {MAX_SLUG} characters "
                "(it names the image, the DAG and the pods)")  # fmt: skip
        if slug == slugify(name, max_length=MAX_SLUG):  # made from the name: speak of the name
            rule += f"; it was made from project_name {name!r}: start the name with a letter, or answer project_slug"
        self.check("project_slug", DNS_LABEL, rule, "air-quality-forecast", MAX_SLUG)

    def check_steps(self):
        steps = [step.strip() for step in self.answers["steps"].split(",")]
        example = "prepare,train,evaluate"
        if any(not step for step in steps):
            self.fail("steps", "comma-separated step names, none empty", example)
        for step in filter(None, steps):
            if not STEP.match(step) or keyword.iskeyword(step):
                self.fail("steps", f"{step!r}: lowercase letters, digits and '_', starting with a letter", example)
            elif step in RESERVED_STEPS:
                self.fail("steps", f"{step!r} is a name main.py already uses; pick another", "train")
            elif len(self.answers["project_slug"]) + 1 + len(step) > MAX_POD_NAME_PREFIX:
                self.fail("steps", f"{step!r}: project_slug + step name at most {MAX_POD_NAME_PREFIX - 1} characters "
                          "(they form the pod name)", "train")  # fmt: skip
        duplicates = sorted({step for step in steps if steps.count(step) > 1})
        if duplicates:
            self.fail("steps", f"each step once (repeated: {', '.join(duplicates)})", example)

    def check_schedule(self):
        schedule = self.answers["schedule"].strip()
        if schedule.lower() == "none" or schedule in SCHEDULE_PRESETS:
            return
        fields = schedule.split()
        rule = "'none', a preset (" + ", ".join(sorted(SCHEDULE_PRESETS)) + ") or a 5-field cron"
        if len(fields) != 5:
            self.fail("schedule", rule + f" (got {len(fields)} fields)", "0 6 * * 1  (Mondays at 06:00)")
            return
        for text, (name, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
            if not cron_field_is_valid(text, low, high, names):
                self.fail("schedule", f"{rule}; the {name} field {text!r} must be within {low}-{high}", "0 6 * * 1")

    def check_places(self):
        """Where the image, the DAG and the index are: registry, repositories, URLs, refs."""
        answers, check = self.answers, self.check
        check("docker_registry", HOST_PORT, "host[:port], without http:// or a path", "repo.irtsysx.fr:5086")
        check("docker_repository", REPOSITORY, "a lowercase repository path", "confiance")
        check("pypi_index_url", re.compile(r"^https?://\S+$"), "an http(s) URL",
              "https://repo.irtsysx.fr/repository/pypi-public/simple")  # fmt: skip
        check("namespace", DNS_LABEL, "a Kubernetes namespace name", "confiance", 63)
        check("image_pull_secret", DNS_SUBDOMAIN, "a Kubernetes secret name", "secretnexus", 253)
        check("ci_templates_project", GITLAB_PROJECT, "a GitLab project path group/.../project",
              "confianceai/ec_1/fa2_infrastructure/gitlab-ci-pipelines")  # fmt: skip
        check("dags_repo_url", re.compile(r"^https://\S+$"), "an https:// clone URL (the sync job pushes with a token)",
              "https://git.irt-systemx.fr/confianceai/ec_1/infra/airflow-dags.git")  # fmt: skip
        check("dags_branch", GIT_REF, "a branch name", "master")
        folder = answers["dags_folder"]
        if folder != "." and (".." in folder.split("/") or not GIT_REF.match(folder)):
            self.fail("dags_folder", "a folder inside the dags repository ('.' for its top level)", "jobs")
        uri = answers["mlflow_tracking_uri"].strip()
        if uri and (not re.match(r"^https?://[^\s/@]+(/\S*)?$", uri)):
            self.fail("mlflow_tracking_uri",
                      "the tracking server's http(s) URL, without credentials (they come from a Secret)",
                      "https://mlflow.example.org")  # fmt: skip
        if answers["airflow_version"] not in AIRFLOW_PROVIDERS:
            self.fail("airflow_version", "a version the platform supports: " + ", ".join(AIRFLOW_PROVIDERS), "2.10.5")

    def check_notify(self):
        problems = notify(self.answers)["errors"]
        if is_url(self.answers["notify"]):  # a webhook URL: its key is a password, never printed
            self.found.append(Problem("notify", f"'webhook': {problems[0]}"))
        elif problems:
            rule = "'none', email addresses separated by commas, or 'webhook' (" + "; ".join(problems) + ")"
            self.fail("notify", rule, "jane.doe@irt-systemx.fr,team-ml@irt-systemx.fr")

    def check_booleans(self):
        for field in ("use_nfs", "use_gpu", "extra_ca_certificates"):
            if not isinstance(self.answers[field], bool):
                self.fail(field, "yes or no", "yes")

    def check_nfs(self):
        self.check("nfs_server", HOST_PORT, "a host name or IP address", "152.228.211.245")
        for field, example in (("nfs_path", "/nfsdata"), ("nfs_mount_path", "/nfsdata")):
            if not str(self.answers[field]).startswith("/") or ".." in self.answers[field]:
                self.fail(field, "an absolute path", example)
        if self.answers["nfs_mount_path"].rstrip("/") in FORBIDDEN_MOUNTS | {""}:
            self.fail("nfs_mount_path", "a folder of its own, not " + ", ".join(sorted(FORBIDDEN_MOUNTS)), "/nfsdata")

    def check_gpu(self):
        self.check("gpu_instance_type", LABEL_VALUE, "a node instance type (a Kubernetes label value)", "t2-180", 63)
        count = str(self.answers["gpu_count"])
        if not count.isdigit() or int(count) < 1:
            self.fail("gpu_count", "a whole number, at least 1, when use_gpu is on", "1")
        steps, gpu_steps = split_list(self.answers["steps"]), split_list(self.answers["gpu_steps"])
        unknown = [step for step in gpu_steps if step not in steps]
        if not gpu_steps or unknown:
            self.fail("gpu_steps", f"one or more of the steps ({', '.join(steps)}), comma separated", steps[-1])

    def check_resources(self, kind, example_request, example_limit):
        request, limit = f"{kind}_request", f"{kind}_limit"
        rule = "a Kubernetes quantity: a number with an optional unit, no space (m, Ki, Mi, Gi, ...)"
        self.check(request, QUANTITY, rule, example_request)
        self.check(limit, QUANTITY, rule, example_limit)
        both_valid = QUANTITY.match(self.answers[request]) and QUANTITY.match(self.answers[limit])
        if both_valid and quantity_value(self.answers[request]) > quantity_value(self.answers[limit]):
            self.fail(limit, f"at least {request} ({self.answers[request]})", self.answers[request])

    def check_step_resources(self):
        for error in step_resources(self.answers)["errors"]:
            rule = error + "; 'step: cpu=REQUEST/LIMIT memory=REQUEST/LIMIT gpus=N', steps separated by ';'"
            self.fail("step_resources", rule, "train: memory=8Gi/16Gi gpus=1; predict: cpu=2")
        if self.answers["use_gpu"] is not True and "gpus=" in self.answers["step_resources"]:
            self.fail("step_resources", "gpus=... only with use_gpu on", "train: memory=8Gi/16Gi")

    def check_env_and_secrets(self):
        env, errors = env_vars(self.answers["env_vars"])
        for error in errors:
            self.fail("env_vars", error, "DATASET=/nfsdata/my-team/dataset,LOG_LEVEL=DEBUG")
        for name in sorted(set(RUN_ENV + SWEEP_ENV) & set(env)):
            self.fail(
                "env_vars", f"{name} is set by the DAG for each run; pick another name", "DATASET=/nfsdata/dataset"
            )
        for secret in split_list(self.answers["secrets"]):
            if not DNS_SUBDOMAIN.match(secret) or len(secret) > 253:
                self.fail("secrets", f"{secret!r}: names of Kubernetes Secrets (lowercase, digits, '-', '.'), comma "
                          "separated", "mlflow-credentials,s3-credentials")  # fmt: skip

    def check_sweeps(self):
        steps, swept = split_list(self.answers["steps"]), split_list(self.answers.get("sweep_steps", ""))
        unknown = [step for step in swept if step not in steps]
        if unknown:
            self.fail("sweep_steps", f"some of the steps ({', '.join(steps)}), comma separated, or empty", steps[-1])
        if not swept:
            return
        at_once = str(self.answers.get("sweep_at_once", "")).strip()
        if at_once and (not at_once.isdigit() or not 1 <= int(at_once) <= SWEEP_MAX):
            self.fail("sweep_at_once", f"a whole number from 1 to {SWEEP_MAX} (empty: {SWEEP_AT_ONCE})", "4")

    def check_serving(self):
        serving = self.answers.get("serving", "none")  # repos made before serving existed have no answer
        if serving not in SERVING:
            self.fail("serving", "'none', or 'mlflow' to serve MLflow models", "mlflow")
        if serving != "mlflow":
            return
        if not str(self.answers.get("mlflow_tracking_uri", "")).strip():
            self.fail("serving", "'mlflow' serves models from the job's MLflow server: answer mlflow_tracking_uri "
                      "too, or answer none", "none")  # fmt: skip
        self.check("serving_host", DNS_SUBDOMAIN, "a host name under the cluster's ingress domain",
                   "serving-my-job.apps.irtsysx.fr", 253)  # fmt: skip
        self.check("ingress_class", DNS_SUBDOMAIN, "the name of the cluster's ingress class", "nginx", 253)

    def check_all(self):
        answers = self.answers
        self.check_slug()
        if "@" not in answers["author_email"]:
            self.fail("author_email", "an email address", "jane.doe@irt-systemx.fr")
        self.check("version", VERSION, "a semantic version X.Y.Z (without the leading v)", "0.1.0")
        self.check("python_version", re.compile(r"^3\.\d+$"), "a Python 3 version as MAJOR.MINOR", "3.11")
        self.check("base_image", re.compile(r"^[\w./:@-]+$"), "a Docker image reference", "python:3.11-slim")
        self.check_steps()
        self.check_schedule()
        self.check_places()
        self.check_notify()
        self.check_booleans()
        if answers["use_nfs"] is True:
            self.check_nfs()
        if answers["use_gpu"] is True:
            self.check_gpu()
        self.check_resources("cpu", "1", "2")
        self.check_resources("memory", "2Gi", "4Gi")
        self.check_step_resources()
        self.check_env_and_secrets()
        self.check_sweeps()
        self.check_serving()
        return self.found


def cron_field_is_valid(text, low, high, names):
    def number(token):
        token = token.upper()
        if token in names:
            return names.index(token) + low
        return int(token) if token.isdigit() else None

    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        bounds = [number(token) for token in base.split("-")]
        if len(bounds) > 2 or any(b is None or not low <= b <= high for b in bounds):
            return False
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            return False
    return True


def problems(answers):
    """Every answer that cannot work, as a list of Problem (empty: they all can)."""
    return Checker(answers).check_all()


def report(found, updating=False):
    """The message that stops a generation: every problem, then what to do."""
    then = (
        "Nothing changed: run cruft update again with corrected answers."  # the job repo is left as it was
        if updating
        else "Run cookiecutter again with corrected answers."
    )
    return (
        "confiance-job: some answers cannot work, nothing was generated:\n\n"
        + "\n".join(map(str, found))
        + f"\n\n{then}"
    )


def forget_secrets(answers, replay_dir=None):
    """Take a webhook URL answer out of cookiecutter's replay files, which keep every answer as typed."""
    answer = str(answers.get("notify", ""))
    if not is_url(answer):
        return
    typed = json.dumps(answer)[1:-1]  # as it is written inside a JSON string
    for replay in Path(replay_dir or Path.home() / ".cookiecutter_replay").glob("*.json"):
        if typed in replay.read_text():
            replay.write_text(replay.read_text().replace(typed, WEBHOOK_URL_REMOVED))
