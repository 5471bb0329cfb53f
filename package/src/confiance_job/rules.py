"""The platform's rules, defined once: the template reads them when it bakes a job
repo, the shared CI and the job repos' tests through this package."""

import re
from pathlib import Path

# The cluster's Kubernetes version: pods are validated against its API schema.
KUBERNETES_VERSION = "1.33.0"

# The Airflow lines a generated DAG must work on, with the newest Kubernetes provider each allows.
AIRFLOW_PROVIDERS = {"3.3.2": "10.25.0", "2.10.5": "10.10.0"}
# The Slack provider of each line, for a DAG whose failures go to a Mattermost or Slack webhook.
SLACK_PROVIDERS = {"3.3.2": "9.11.1", "2.10.5": "9.5.0"}
# The tools job repos check and build with, and the template's tests: {name: version}, from tools.txt,
# their one home (pip reads it as constraints too).
TOOLS = dict(
    line.split("==")
    for line in (Path(__file__).with_name("tools.txt")).read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
# The major version of the shared CI jobs (ci-templates/) that job repos include: `@1` takes the newest
# 1.x.y release of the components. Raise it with the release that changes their inputs (ci-templates/README.md).
SHARED_CI_VERSION = "1"
# The line the platform runs (the guide's): job repos and the sync job check DAGs with it by default.
PLATFORM_AIRFLOW = "2.10.5"

# A version X.Y.Z with an optional pre-release (1.0.0-rc.1), as in the image tags; a release tag is v + that.
SEMVER = r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?"
VERSION = re.compile(f"^{SEMVER}$")
RELEASE_TAG = re.compile(f"^v{SEMVER}$")

# A Kubernetes quantity as the cluster accepts it for cpu and memory: "1", "500m", "1.5Gi", ".5".
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
QUANTITY = re.compile(QUANTITY_PATTERN)

# An environment variable name, as the form's env field and the env_vars answer take it.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# What the DAG sets for each run, and for each pod of a sweep: names no answer or sweep may take.
RUN_ENV = ["RUN_ID", "RUN_DIR", "IMAGE_TAG", "TRY_NUMBER"]
SWEEP_ENV = ["SWEEP_INDEX", "SWEEP_SIZE", "SWEEP_DIR"]
# The most pods one swept step may have: Airflow's [core] max_map_length (its default), which the
# platform keeps; a longer list would fail the run when Airflow expands it.
SWEEP_MAX = 1024
# How many pods of a sweep run at once when the sweep_at_once answer is empty (a sweep added by cruft update).
SWEEP_AT_ONCE = 4
QUANTITY_FACTOR = {
    "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


# An image tag as the registry takes it. A release tag v0.2.0 publishes the image tag 0.2.0, never v0.2.0:
# the form refuses v0.2.0 (an image that never exists); the commands turn it into 0.2.0 (image_tag below).
IMAGE_TAG_PATTERN = r"^(?!v[0-9]+\.[0-9])[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
IMAGE_TAG_HELP = "The git tag v0.2.0 publishes the image tag 0.2.0."
CPU_EXAMPLES, MEMORY_EXAMPLES = ["4", "500m"], ["16Gi", "512Mi"]
# What each field of the generated DAGs' Trigger form takes, and valid values, for error messages.
FORM_RULES = {
    "image_tag": ("an image tag: letters, digits, '.', '_', '-', and not the git tag's v", ["0.2.0", "dev-1a2b3c4"]),
    "cpu": ("a Kubernetes quantity", CPU_EXAMPLES),
    "memory": ("a Kubernetes quantity", MEMORY_EXAMPLES),
    "env": ("a JSON object of text values", [{"EPOCHS": "3"}]),
    "model_uri": ("an MLflow model URI", ["runs:/<run id>/model", "models:/<name>/<version>", "latest:<experiment>"]),
    "sweep": ("a JSON list of objects of text values", [[{"LR": "0.1"}, {"LR": "0.01"}]]),
}


def form_rule(field):
    """(what a field takes, examples), for the form's fields; a step's sweep field <step>_sweep is a sweep."""
    return FORM_RULES.get(field) or (FORM_RULES["sweep"] if field.endswith("_sweep") else None)


def image_tag(text):
    """The image tag a person means: 'v0.2.0' (the git tag) -> '0.2.0'; any other text as it is."""
    return text[1:] if RELEASE_TAG.match(text) else text


def release_version(tag):
    """'v1.2.0' -> '1.2.0'; ValueError saying what a release tag looks like otherwise."""
    if not RELEASE_TAG.match(tag or ""):
        raise ValueError(
            f"tag {tag!r} is not a release tag. Expected vMAJOR.MINOR.PATCH, e.g. v0.2.0 or v1.0.0-rc.1. "
            f"Delete it (git push --delete origin {tag}) and tag again."
        )
    return tag[1:]


def is_prerelease(version):
    """'1.0.0-rc.1' is a pre-release: it never becomes what scheduled or default runs use."""
    return VERSION.match(version).group(4) is not None


def quantity_value(text):
    """'1.5Gi' -> 1610612736.0, to compare a request with its limit."""
    number, unit = QUANTITY.match(text).group(1, 3)
    return float(number) * QUANTITY_FACTOR[unit or ""]


def resource_problems(step, kind, request, limit):
    """What is wrong with a step's [request, limit] of cpu or memory, one sentence each (none: they are valid)."""
    examples = CPU_EXAMPLES if kind == "cpu" else MEMORY_EXAMPLES
    problems = [
        f"step {step}: {kind} {name} {value!r} is not a Kubernetes quantity, e.g. {' or '.join(examples)}"
        for name, value in (("request", request), ("limit", limit))
        if not QUANTITY.match(str(value))
    ]
    if not problems and quantity_value(str(request)) > quantity_value(str(limit)):
        problems.append(f"step {step}: {kind} request {request} is above its limit {limit}; the cluster refuses it")
    return problems


# Why a step failed, in one line, from what Airflow wrote or raised about its pod (the provider's
# messages, the scheduler's events): (pattern, reason). The first pattern found wins; "{}" is its
# group. `make logs` reads them in a step's log, and each DAG in the error its failure message tells.
NOT_PULLED = "check the tag exists in the registry and the image pull secret is in the namespace"
PENDING = "the pod stayed Pending past the startup timeout"
FAILURE_REASONS = [
    (r"\bOOMKilled\b", "out of memory (OOMKilled): the step used more than its memory limit; give it more memory"),
    (r"\b(ErrImagePull|ImagePullBackOff|InvalidImageName|ErrImageNeverPull)\b", "image not found ({}): " + NOT_PULLED),
    (r"(?i)image cannot be pulled", "image not found (ErrImagePull): " + NOT_PULLED),
    # "0/3 nodes are available: 3 Insufficient memory. preemption: ..."
    (
        r"\d+/\d+ nodes are available: (.*?)(?:\. preemption:.*|\.)?$",
        "no node with the requested resources ({}): " + PENDING,
    ),
    (r"Pod took too long to (?:start|be scheduled)", "no node with the requested resources: " + PENDING),
    (
        r"(?:state='TERMINATED', reason='[^']*', exit_code=|returned a non-zero exit code |"
        r"Command exited with return code |'exit_code': )(\d+)",
        "exit code {}",
    ),
]


def failure_reason(text, reasons=FAILURE_REASONS):
    """Why a step failed, in one line, from its log or error text; None if the text does not say.
    The last match counts."""
    for pattern, reason in reasons:
        found = [match.groups() for match in re.finditer(pattern, text, re.M)]
        found = [groups for groups in found if groups != ("0",)]  # an exit code 0 is no failure
        if found:
            return reason.format(*found[-1])
    return None


def serving_dag_id(dag_id):
    """The id (and file stem) of a job's serving DAG: dags/<slug>-serve.py defines <slug>-serve."""
    return f"{dag_id}-serve"
