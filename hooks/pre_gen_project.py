"""Check every answer before a single file is written.

Each rule names the field, says what is expected and gives a valid example.
All problems are reported at once; any problem stops the generation (exit 1),
and cookiecutter removes the half-made folder.
"""

import json
import keyword
import re
import sys

ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")
REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
GITLAB_PROJECT = re.compile(r"^[\w.-]+(/[\w.-]+)+$")
GIT_REF = re.compile(r"^[\w][\w./-]*$")
STEP = re.compile(r"^[a-z][a-z0-9_]*$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
QUANTITY_FACTOR = {
    "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
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
# Mounting the share here would hide the job's code or the system.
# Step names become functions of main.py: they must not shadow its own names.
RESERVED_STEPS = {"argparse", "datetime", "json", "load_json", "log", "logging", "main", "os", "parse_args",
                  "save_json", "sys", "timezone"}
FORBIDDEN_MOUNTS = {"/", "/app", "/bin", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr", "/var"}

errors = []


def fail(field, rule, example):
    errors.append(f"  - {field} = {ANSWERS.get(field)!r}\n      expected: {rule}\n      example:  {example}")


def check(field, pattern, rule, example, max_len=None):
    value = str(ANSWERS[field])
    if not pattern.match(value) or (max_len and len(value) > max_len):
        fail(field, rule, example)


def quantity_value(text):
    number, unit = QUANTITY.match(text).group(1, 3)
    return float(number) * QUANTITY_FACTOR[unit or ""]


def check_resources(kind, example_request, example_limit):
    request, limit = f"{kind}_request", f"{kind}_limit"
    rule = "a Kubernetes quantity: a number with an optional unit, no space (m, Ki, Mi, Gi, ...)"
    check(request, QUANTITY, rule, example_request)
    check(limit, QUANTITY, rule, example_limit)
    both_valid = QUANTITY.match(ANSWERS[request]) and QUANTITY.match(ANSWERS[limit])
    if both_valid and quantity_value(ANSWERS[request]) > quantity_value(ANSWERS[limit]):
        fail(limit, f"at least {request} ({ANSWERS[request]})", ANSWERS[request])


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


def check_schedule():
    schedule = ANSWERS["schedule"].strip()
    if schedule.lower() == "none" or schedule in SCHEDULE_PRESETS:
        return
    fields = schedule.split()
    rule = "'none', a preset (" + ", ".join(sorted(SCHEDULE_PRESETS)) + ") or a 5-field cron"
    if len(fields) != 5:
        fail("schedule", rule + f" (got {len(fields)} fields)", "0 6 * * 1  (Mondays at 06:00)")
        return
    for text, (name, low, high, names) in zip(fields, CRON_FIELDS):
        if not cron_field_is_valid(text, low, high, names):
            fail("schedule", f"{rule}; the {name} field {text!r} must be within {low}-{high}", "0 6 * * 1")


def check_steps():
    steps = [step.strip() for step in ANSWERS["steps"].split(",")]
    example = "prepare,train,evaluate"
    if any(not step for step in steps):
        fail("steps", "comma-separated step names, none empty", example)
    for step in filter(None, steps):
        if not STEP.match(step) or keyword.iskeyword(step):
            fail("steps", f"{step!r}: lowercase letters, digits and '_', starting with a letter", example)
        elif step in RESERVED_STEPS:
            fail("steps", f"{step!r} is a name main.py already uses; pick another", "train")
        elif len(ANSWERS["project_slug"]) + 1 + len(step) > MAX_POD_NAME_PREFIX:
            fail("steps", f"{step!r}: project_slug + step name at most {MAX_POD_NAME_PREFIX - 1} characters "
                 "(they form the pod name)", "train")
    duplicates = sorted({step for step in steps if steps.count(step) > 1})
    if duplicates:
        fail("steps", f"each step once (repeated: {', '.join(duplicates)})", example)


def check_nfs():
    check("nfs_server", HOST_PORT, "a host name or IP address", "152.228.211.245")
    for field, example in (("nfs_path", "/nfsdata"), ("nfs_mount_path", "/nfsdata")):
        if not str(ANSWERS[field]).startswith("/") or ".." in ANSWERS[field]:
            fail(field, "an absolute path", example)
    if ANSWERS["nfs_mount_path"].rstrip("/") in FORBIDDEN_MOUNTS | {""}:
        fail("nfs_mount_path", "a folder of its own, not " + ", ".join(sorted(FORBIDDEN_MOUNTS)), "/nfsdata")


def check_gpu():
    check("gpu_instance_type", LABEL_VALUE, "a node instance type (a Kubernetes label value)", "t2-180", 63)
    count = str(ANSWERS["gpu_count"])
    if not count.isdigit() or int(count) < 1:
        fail("gpu_count", "a whole number, at least 1, when use_gpu is on", "1")


def check_booleans():
    for field in ("use_nfs", "use_gpu", "extra_ca_certificates"):
        if not isinstance(ANSWERS[field], bool):
            fail(field, "yes or no", "yes")


def main():
    if not ANSWERS["project_name"].strip():
        fail("project_name", "a name", "Air Quality Forecast")
    check("project_slug", DNS_LABEL, f"lowercase letters, digits and '-', starting with a letter, at most {MAX_SLUG} "
          "characters (it names the image, the DAG and the pods)", "air-quality-forecast", MAX_SLUG)
    if "@" not in ANSWERS["author_email"]:
        fail("author_email", "an email address", "jane.doe@irt-systemx.fr")
    check("version", SEMVER, "a semantic version X.Y.Z (without the leading v)", "0.1.0")
    check("python_version", re.compile(r"^3\.\d+$"), "a Python 3 version as MAJOR.MINOR", "3.11")
    check("base_image", re.compile(r"^[\w./:@-]+$"), "a Docker image reference", "python:3.11-slim")
    check_steps()
    check_schedule()
    check("docker_registry", HOST_PORT, "host[:port], without http:// or a path", "repo.irtsysx.fr:5086")
    check("docker_repository", REPOSITORY, "a lowercase repository path", "confiance")
    check("pypi_index_url", re.compile(r"^https?://\S+$"), "an http(s) URL", "https://repo.irtsysx.fr/repository/pypi-public/simple")
    check("namespace", DNS_LABEL, "a Kubernetes namespace name", "confiance", 63)
    check("image_pull_secret", DNS_SUBDOMAIN, "a Kubernetes secret name", "secretnexus", 253)
    check("ci_templates_project", GITLAB_PROJECT, "a GitLab project path group/.../project", "confianceai/ec_1/fa2_infrastructure/gitlab-ci-pipelines")
    check("ci_templates_ref", GIT_REF, "a branch or tag name", "master")
    check("dags_repo_url", re.compile(r"^https://\S+$"), "an https:// clone URL (the sync job pushes with a token)", "https://git.irt-systemx.fr/confianceai/ec_1/infra/airflow-dags.git")
    check("dags_branch", GIT_REF, "a branch name", "master")
    folder = ANSWERS["dags_folder"]
    if folder != "." and (".." in folder.split("/") or not GIT_REF.match(folder)):
        fail("dags_folder", "a folder inside the dags repository ('.' for its top level)", "jobs")
    check_booleans()
    if ANSWERS["use_nfs"] is True:
        check_nfs()
    if ANSWERS["use_gpu"] is True:
        check_gpu()
    check_resources("cpu", "1", "2")
    check_resources("memory", "2Gi", "4Gi")

    if errors:
        print("confiance-job: some answers cannot work, nothing was generated:\n", file=sys.stderr)
        print("\n".join(errors), file=sys.stderr)
        print("\nRun cookiecutter again with corrected answers.", file=sys.stderr)
        sys.exit(1)


main()
