"""Check every answer before a single file is written.

Each rule names the field, says what is expected and gives a valid example.
All problems are reported at once; any problem stops the generation (exit 1),
and cookiecutter removes the half-made folder.
"""

import json
import keyword
import re
import sys
from pathlib import Path

ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})
sys.path.insert(0, {{ template_dir | tojson }})  # the template's own rules, shared with its files
from local_extensions import env_vars, is_url, notify, split_list, step_resources  # noqa: E402  (puts the package on the path)
from confiance_job.rules import AIRFLOW_PROVIDERS, QUANTITY, VERSION, quantity_value  # noqa: E402
from slugify import slugify  # noqa: E402  (cookiecutter's own slugify)

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")
REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
GITLAB_PROJECT = re.compile(r"^[\w.-]+(/[\w.-]+)+$")
GIT_REF = re.compile(r"^[\w][\w./-]*$")
STEP = re.compile(r"^[a-z][a-z0-9_]*$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Set by the DAG for each run: the answers cannot choose them.
RUN_ENV = {"RUN_ID", "RUN_DIR", "IMAGE_TAG", "TRY_NUMBER"}
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
    steps, gpu_steps = split_list(ANSWERS["steps"]), split_list(ANSWERS["gpu_steps"])
    unknown = [step for step in gpu_steps if step not in steps]
    if not gpu_steps or unknown:
        fail("gpu_steps", f"one or more of the steps ({', '.join(steps)}), comma separated", steps[-1])


def check_slug():
    slug, name = ANSWERS["project_slug"], ANSWERS["project_name"]
    rule = (f"lowercase letters, digits and '-', starting with a letter, at most {MAX_SLUG} characters "
            "(it names the image, the DAG and the pods)")
    if slug == slugify(name, max_length=MAX_SLUG):  # made from the name: speak of the name
        rule += f"; it was made from project_name {name!r}: start the name with a letter, or answer project_slug"
    check("project_slug", DNS_LABEL, rule, "air-quality-forecast", MAX_SLUG)


def check_step_resources():
    for error in step_resources(ANSWERS)["errors"]:
        fail("step_resources", error + "; 'step: cpu=REQUEST/LIMIT memory=REQUEST/LIMIT gpus=N', steps separated by ';'",
             "train: memory=8Gi/16Gi gpus=1; predict: cpu=2")
    if ANSWERS["use_gpu"] is not True and "gpus=" in ANSWERS["step_resources"]:
        fail("step_resources", "gpus=... only with use_gpu on", "train: memory=8Gi/16Gi")


def check_env_and_secrets():
    env, errors = env_vars(ANSWERS["env_vars"])
    for error in errors:
        fail("env_vars", error, "DATASET=/nfsdata/my-team/dataset,LOG_LEVEL=DEBUG")
    for name in sorted(RUN_ENV & set(env)):
        fail("env_vars", f"{name} is set by the DAG for each run; pick another name", "DATASET=/nfsdata/dataset")
    for secret in split_list(ANSWERS["secrets"]):
        if not DNS_SUBDOMAIN.match(secret) or len(secret) > 253:
            fail("secrets", f"{secret!r}: names of Kubernetes Secrets (lowercase, digits, '-', '.'), comma separated",
                 "mlflow-credentials,s3-credentials")


def check_booleans():
    for field in ("use_nfs", "use_gpu", "extra_ca_certificates"):
        if not isinstance(ANSWERS[field], bool):
            fail(field, "yes or no", "yes")


def forget_in_replay(answer):
    """Take a refused secret out of cookiecutter's replay files, which keep every answer as typed."""
    for replay in (Path.home() / ".cookiecutter_replay").glob("*.json"):
        text = replay.read_text()
        if json.dumps(answer)[1:-1] in text:
            replay.write_text(text.replace(json.dumps(answer)[1:-1], "<a webhook URL, removed>"))


def check_notify():
    problems = notify(ANSWERS)["errors"]
    if is_url(ANSWERS["notify"]):  # a webhook URL: its key is a password, never echoed nor kept
        forget_in_replay(ANSWERS["notify"])
        errors.append(f"  - notify = <a URL>\n      expected: 'webhook': {problems[0]}")
    elif problems:
        fail("notify", "'none', email addresses separated by commas, or 'webhook' (" + "; ".join(problems) + ")",
             "jane.doe@irt-systemx.fr,team-ml@irt-systemx.fr")


def main():
    if not slugify(ANSWERS["project_name"]):
        fail("project_name", "a name with letters or digits (the short name is made from them)", "Air Quality Forecast")
    check_slug()
    if "@" not in ANSWERS["author_email"]:
        fail("author_email", "an email address", "jane.doe@irt-systemx.fr")
    check("version", VERSION, "a semantic version X.Y.Z (without the leading v)", "0.1.0")
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
    uri = ANSWERS["mlflow_tracking_uri"].strip()
    if uri and (not re.match(r"^https?://[^\s/@]+(/\S*)?$", uri)):
        fail("mlflow_tracking_uri", "the tracking server's http(s) URL, without credentials (they come from a Secret)",
             "https://mlflow.example.org")
    folder = ANSWERS["dags_folder"]
    if folder != "." and (".." in folder.split("/") or not GIT_REF.match(folder)):
        fail("dags_folder", "a folder inside the dags repository ('.' for its top level)", "jobs")
    if ANSWERS["airflow_version"] not in AIRFLOW_PROVIDERS:
        fail("airflow_version", "a version the platform supports: " + ", ".join(AIRFLOW_PROVIDERS), "2.10.5")
    check_notify()
    check_booleans()
    if ANSWERS["use_nfs"] is True:
        check_nfs()
    if ANSWERS["use_gpu"] is True:
        check_gpu()
    check_resources("cpu", "1", "2")
    check_resources("memory", "2Gi", "4Gi")
    check_step_resources()
    check_env_and_secrets()

    if errors:
        print("confiance-job: some answers cannot work, nothing was generated:\n", file=sys.stderr)
        print("\n".join(errors), file=sys.stderr)
        if "_commit" in ANSWERS:  # cruft update --variables-to-update: the job repo is left as it was
            print("\nNothing changed: run cruft update again with corrected answers.", file=sys.stderr)
        else:
            print("\nRun cookiecutter again with corrected answers.", file=sys.stderr)
        sys.exit(1)


main()
