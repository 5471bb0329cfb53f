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
from confiance_job.answers import notify, split_list, static_env, step_resources  # noqa: E402
from confiance_job.rules import (  # noqa: E402
    AIRFLOW_PROVIDERS,
    ENV_NAME_PATTERN,
    FAILURE_REASONS,
    IMAGE_TAG_HELP,
    IMAGE_TAG_PATTERN,
    KUBERNETES_VERSION,
    PLATFORM_AIRFLOW,
    QUANTITY_PATTERN,
    RUN_ENV,
    SHARED_CI_VERSION,
    SLACK_PROVIDERS,
    SWEEP_AT_ONCE,
    SWEEP_ENV,
    SWEEP_MAX,
    TOOLS,
    failure_reason,
)

FILTERS = {}


def _filter(function):
    """Make `function` a Jinja filter of the template, under its own name."""
    FILTERS[function.__name__] = function
    return function


# How answers are read lives in the package (confiance_job.answers), with the rules that check them.
for _reader in (step_resources, static_env, notify):
    FILTERS[_reader.__name__] = _reader


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
        "shared_ci_version": SHARED_CI_VERSION,
        "kubernetes_version": KUBERNETES_VERSION,
        "quantity_pattern": QUANTITY_PATTERN,
        "image_tag_pattern": IMAGE_TAG_PATTERN,
        "image_tag_help": IMAGE_TAG_HELP,
        "env_name_pattern": ENV_NAME_PATTERN,
        "sweep_max": SWEEP_MAX,
        "sweep_at_once": SWEEP_AT_ONCE,
        "sweep_reserved": RUN_ENV + SWEEP_ENV,
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
