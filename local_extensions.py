"""Jinja filters of the template (cookiecutter loads them through `_extensions`).

Answers are parsed and escaped here, once, so that every generated file reads
them the same way and any text a person typed yields files that still compile.
"""

import importlib
import inspect
import json
import re
import sys
from pathlib import Path

from jinja2.ext import Extension

# The platform's rules live in its package (package/), which this template ships: one definition for all.
sys.path.insert(0, str(Path(__file__).resolve().parent / "package" / "src"))
sys.dont_write_bytecode = True  # two checkouts of the template in one place must never share compiled files
from confiance_job import __version__ as TOOL_VERSION  # noqa: E402
from confiance_job.rules import (  # noqa: E402
    AIRFLOW_PROVIDERS,
    ENV_NAME_PATTERN,
    FAILURE_REASONS,
    IMAGE_TAG_HELP,
    IMAGE_TAG_PATTERN,
    KUBERNETES_VERSION,
    PLATFORM_AIRFLOW,
    QUANTITY_PATTERN,
    SLACK_PROVIDERS,
    TOOLS,
    failure_reason,
    resource_problems,
)

RESOURCE_KEYS = ("cpu", "memory", "gpus")
ENV_NAME = re.compile(ENV_NAME_PATTERN)
FILTERS = {}


def _filter(function):
    """Make `function` a Jinja filter of the template, under its own name."""
    FILTERS[function.__name__] = function
    return function


def split_list(text):
    """'a, b ,c' -> ['a', 'b', 'c']; '' -> []."""
    return [item.strip() for item in str(text).split(",")] if str(text).strip() else []


@_filter
def items(text):
    """A comma-separated answer as a list (steps, secrets, GPU steps)."""
    return split_list(text)


@_filter
def py_str(text):
    """A Python string literal of `text`, quoted as ruff format would quote it."""
    body = json.dumps(str(text), ensure_ascii=False)[1:-1]  # escapes \, " and control characters
    if str(text).count('"') > str(text).count("'"):
        return "'" + body.replace('\\"', '"').replace("'", "\\'") + "'"
    return '"' + body + '"'


@_filter
def docstring(text):
    """Text that can stand inside a triple-quoted docstring, unchanged once Python reads it
    (but for spaces at the end of a line, which linters refuse)."""
    text = "\n".join(line.rstrip() for line in str(text).splitlines()).replace("\\", "\\\\")
    return re.sub(r'"(?="|$)', r'\\"', text)  # no two quotes in a row, none at the end


@_filter
def one_line(text):
    """Text for a Markdown heading or a comment: newlines become spaces."""
    return " ".join(str(text).split())


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


@_filter
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


@_filter
def static_env(answers):
    """The environment every step gets: the job's name, its data folder, MLflow's server, then env_vars."""
    data_dir = f"{answers['nfs_mount_path']}/{answers['project_slug']}" if answers["use_nfs"] is True else "/data"
    env = {"JOB_NAME": answers["project_slug"], "DATA_DIR": data_dir}
    if str(answers.get("mlflow_tracking_uri", "")).strip():  # every step logs to the same server and experiment
        env["MLFLOW_TRACKING_URI"] = answers["mlflow_tracking_uri"].strip()
        env["MLFLOW_EXPERIMENT_NAME"] = answers["project_slug"]
    return {**env, **env_vars(answers["env_vars"])[0]}


EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


def is_url(answer):
    """A URL, with its scheme or without (chat.example.org/hooks/...): an email address has no '/'."""
    return "://" in answer or "/" in answer


@_filter
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


def failure_reasons_code():
    """FAILURE_REASONS and failure_reason as Python source for a DAG (which cannot import the package),
    laid out as ruff format lays them out."""
    lines = ["FAILURE_REASONS = ["]
    for pattern, reason in FAILURE_REASONS:
        pair = f'    (r"{pattern}", {py_str(reason)}),'
        lines += (
            [pair] if len(pair) <= 120 else ["    (", f'        r"{pattern}",', f"        {py_str(reason)},", "    ),"]
        )
    return "\n".join([*lines, "]", "", "", inspect.getsource(failure_reason).rstrip()])


def template_globals():
    """The platform's facts the templates use, as this file's checkout of the template defines them."""
    return {
        "template_dir": str(Path(__file__).resolve().parent),  # for the hooks, which run elsewhere
        "tool_version": TOOL_VERSION,
        "platform_airflow": PLATFORM_AIRFLOW,
        "airflow_providers": AIRFLOW_PROVIDERS,
        "slack_providers": SLACK_PROVIDERS,
        "tools": TOOLS,
        "kubernetes_version": KUBERNETES_VERSION,
        "quantity_pattern": QUANTITY_PATTERN,
        "image_tag_pattern": IMAGE_TAG_PATTERN,
        "image_tag_help": IMAGE_TAG_HELP,
        "env_name_pattern": ENV_NAME_PATTERN,
        "failure_reasons_code": failure_reasons_code(),
    }


def this_templates_module():
    """This module as the template being rendered now has it.

    One process may render two versions of the template (cruft update renders the
    old and the new one), but Python imports a module once: forget the loaded
    copies so that the template on cookiecutter's path is read afresh."""
    for name in [name for name in sys.modules if name.split(".")[0] in ("local_extensions", "confiance_job")]:
        del sys.modules[name]
    return importlib.import_module("local_extensions")


class Filters(Extension):
    """The filters above, for the templates ({{ cookiecutter.steps | items }}), and the platform's rules."""

    def __init__(self, environment):
        super().__init__(environment)
        current = this_templates_module()
        environment.filters.update(current.FILTERS)
        environment.globals.update(current.template_globals())
