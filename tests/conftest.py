"""Shared helpers of the template's tests: baking, Airflow environments, engines."""

import fcntl
import itertools
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"

sys.path.insert(0, str(ROOT / "package" / "src"))
from confiance_job.rules import AIRFLOW_PROVIDERS, SLACK_PROVIDERS, TOOLS  # noqa: E402  (the platform's own lists)

# The Airflow lines a generated DAG must work on, each with its providers; named by major version.
AIRFLOW_LINES = {
    f"airflow{version[0]}": [
        f"apache-airflow=={version}",
        f"apache-airflow-providers-cncf-kubernetes=={provider}",
        f"apache-airflow-providers-slack=={SLACK_PROVIDERS[version]}",
    ]
    for version, provider in AIRFLOW_PROVIDERS.items()
}
# The platform's tooling (editable: the tests always run this checkout's code) and the test tools.
AIRFLOW_TOOLS = ["-e", str(ROOT / "package")] + [f"{tool}=={TOOLS[tool]}" for tool in ("kubernetes-validate", "pytest")]

# The tools installed next to this python (ruff, check-jsonschema, pre-commit, uv) come first.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

# tests/user_job is a job repo's code, tested inside a baked repo with the job's own requirements.
collect_ignore = ["user_job"]

# Tests run make as a person types it: not as a sub-make of `make test` (which would add its jobserver
# and print "make[1]: Entering directory").
for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
    os.environ.pop(name, None)

# .ci/run sets this: there, a test that lacks an engine fails instead of skipping.
REQUIRE_ENGINES = os.environ.get("CONFIANCE_REQUIRE_ENGINES") == "1"


def need(available, reason):
    """Skip (on a laptop) or fail (in CI) when something a test needs is missing."""
    if available:
        return
    if REQUIRE_ENGINES:
        pytest.fail(f"{reason} (CONFIANCE_REQUIRE_ENGINES=1: it must be provisioned here)")
    pytest.skip(reason)


def bake(output_dir, **answers):
    """Generate a job repo with cookiecutter's API; returns its folder."""
    return Path(cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def run(command, cwd=None, env=None, check=True, timeout=600):
    """Run a command, capture its output, and show it all when it fails."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))[:300]} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def wait_until(probe, timeout, every=1.0):
    """The first truthy value `probe` returns; an exception counts as "not yet". TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - a service that is still starting
            last_error = error
        time.sleep(every)
    raise TimeoutError(f"not ready after {timeout} s" + (f": {last_error}" if last_error else ""))


def ensure_venv(name, requirements):
    """A virtualenv under .cache/venvs with exactly these requirements; built once, reused after."""
    venv = CACHE / "venvs" / name
    python = venv / "bin" / "python"
    wanted = "\n".join(requirements)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{name}.lock", "w") as lock:  # pytest-xdist workers may race here
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / "requirements.lock"
        if not (marker.exists() and marker.read_text() == wanted and python.exists()):
            shutil.rmtree(venv, ignore_errors=True)
            run(["uv", "venv", "--quiet", "--python", sys.executable, venv])
            run(["uv", "pip", "install", "--quiet", "--python", python, *requirements], timeout=900)
            marker.write_text(wanted)
    return python


@pytest.fixture(scope="session", params=list(AIRFLOW_LINES))
def airflow_python(request):
    """The python of a venv holding one Airflow line, its Kubernetes provider, pytest and kubernetes-validate."""
    return ensure_venv(request.param, AIRFLOW_LINES[request.param] + AIRFLOW_TOOLS)


def answers_with_defaults(answers):
    """Every answer cookiecutter uses for these: them, and cookiecutter.json's defaults rendered as a bake does."""
    sys.path.insert(0, str(ROOT))  # the template's Jinja extensions, which the defaults use
    try:
        context = generate_context(str(ROOT / "cookiecutter.json"), extra_context=answers)
        return dict(prompt_for_config(context, no_input=True))
    finally:
        sys.path.remove(str(ROOT))


DEFAULTS = answers_with_defaults({})


# The options that change what is generated, and the values worth baking. Tests select combinations
# by these values, e.g. find(steps="several", gpu_steps="last"). Each value has its id in test names
# and its answers ("{last}" stands for the combination's last step); answers left out keep
# cookiecutter.json's defaults, which are also what tests expect of them. Each option's first value is
# its default, so the first combination is what `cookiecutter --no-input` bakes.
#
# These meet in the same pod: the NFS volume and a GPU step's /dev/shm are merged, the GPU settings go
# to the GPU steps only, and a step's memory limit sizes its /dev/shm. Every combination is baked.
POD_OPTIONS = {
    "steps": {
        "one": ("1step", {"steps": "run"}),
        "several": ("3steps", {"steps": "prepare,train,evaluate"}),
    },
    "use_nfs": {True: ("nfs", {"use_nfs": True}), False: ("nonfs", {"use_nfs": False})},
    "step_resources": {
        "none": ("", {"step_resources": ""}),
        "last": ("bigmem_last", {"step_resources": "{last}: memory=8Gi/16Gi"}),
    },
    "gpu_steps": {
        "none": ("cpu", {"use_gpu": False}),
        "all": ("gpu", {"use_gpu": True}),  # cookiecutter.json's gpu_steps: every step
        "last": ("gpu_last", {"use_gpu": True, "gpu_steps": "{last}"}),
    },
}
# These each change a place of their own (the Dockerfile, the schedule, the env, the requirements):
# their values are cycled through the combinations above rather than multiplied, so each value is
# baked at least once and a new option adds no bake. Ids show them only where they are not the default.
CYCLED_OPTIONS = {
    "extra_ca_certificates": {
        False: ("nocerts", {"extra_ca_certificates": False}),
        True: ("certs", {"extra_ca_certificates": True}),
    },
    "schedule": {"none": ("manual", {"schedule": "none"}), "cron": ("cron", {"schedule": "0 6 * * 1"})},
    "secrets": {"none": ("nosecrets", {"secrets": ""}), "some": ("secrets", {"secrets": "mlflow-credentials"})},
    "env_vars": {"none": ("noenv", {"env_vars": ""}), "some": ("env", {"env_vars": "DATASET=/nfsdata/team/data"})},
    "mlflow_tracking_uri": {
        "none": ("nomlflow", {"mlflow_tracking_uri": ""}),
        "some": ("mlflow", {"mlflow_tracking_uri": "https://mlflow.example.org"}),
    },
    "notify": {
        "none": ("quiet", {"notify": "none"}),
        "email": ("mail", {"notify": "team-ml@example.org,jane.doe@example.org"}),
        "webhook": ("webhook", {"notify": "webhook"}),
    },
    "airflow_version": {
        version: (f"airflow{version}", {"airflow_version": version})
        for version in sorted(AIRFLOW_PROVIDERS, key=lambda version: version != DEFAULTS["airflow_version"])
    },
    "base_image": {
        "python": ("python", {}),
        "cuda": ("cuda", {"base_image": "nvidia/cuda:12.6.3-runtime-ubuntu24.04"}),
    },
}
OPTIONS = {**POD_OPTIONS, **CYCLED_OPTIONS}


@dataclass(frozen=True, eq=False)
class Combination:
    """One job repo of the matrix: the option values that describe it, and the answers that bake it."""

    id: str
    properties: dict  # {option: value}, as in OPTIONS
    answers: dict  # what the bake passes to cookiecutter
    context: dict  # every answer cookiecutter uses: the answers above and cookiecutter.json's defaults

    def has(self, name, value):
        """Whether an option (or else an answer, e.g. use_gpu) has this value."""
        return (self.properties[name] if name in self.properties else self.context[name]) == value

    @property
    def steps(self):
        return self.context["steps"].split(",")

    @property
    def gpu_steps(self):
        return self.context["gpu_steps"].split(",") if self.context["use_gpu"] else []


def pod_shapes():
    """Every combination of POD_OPTIONS' values, as {option: value}, each baking different files."""
    for values in itertools.product(*POD_OPTIONS.values()):
        shape = dict(zip(POD_OPTIONS, values, strict=True))
        if not (shape["steps"] == "one" and shape["gpu_steps"] == "last"):  # one step: its last is every step
            yield shape


def answers_of(properties):
    """The answers these option values give, with the combination's last step in place of "{last}"."""
    answers = {
        name: answer for option, value in properties.items() for name, answer in OPTIONS[option][value][1].items()
    }
    last_step = answers["steps"].split(",")[-1]
    return {
        name: answer.replace("{last}", last_step) if isinstance(answer, str) else answer
        for name, answer in answers.items()
    }


def id_of(properties):
    """E.g. '3steps-nonfs-bigmem_last-gpu_last-certs-cron': the pod shape, then the cycled values but defaults."""
    parts = []
    for option, value in properties.items():
        value_id, answers = OPTIONS[option][value]
        if option in POD_OPTIONS or any(DEFAULTS[name] != answer for name, answer in answers.items()):
            parts.append(value_id)
    return "-".join(filter(None, parts))


def combination(properties):
    answers = answers_of(properties)
    return Combination(id_of(properties), properties, answers, answers_with_defaults(answers))


def combinations():
    """The pod shapes, each with the next value of every cycled option, as cookiecutter-data-science does."""
    cycled = {option: itertools.cycle(values) for option, values in CYCLED_OPTIONS.items()}
    return [
        combination({**shape, **{option: next(values) for option, values in cycled.items()}}) for shape in pod_shapes()
    ]


COMBINATIONS = combinations()


def find(**wanted):
    """The first combination with these option values or answers, e.g. find(steps="several", use_gpu=True)."""
    for combo in COMBINATIONS:
        if all(combo.has(name, value) for name, value in wanted.items()):
            return combo
    raise LookupError(f"no combination has {wanted}; the matrix: {[combo.id for combo in COMBINATIONS]}")


def fewest_covering_every_value(combos):
    """The fewest of these combinations that together have every value of every option (the first such set)."""
    every_value = {(option, value) for option, values in OPTIONS.items() for value in values}
    missing = every_value - {item for combo in combos for item in combo.properties.items()}
    if missing:
        raise LookupError(f"no combination has {sorted(missing, key=str)}")
    for size in range(1, len(combos) + 1):
        for chosen in itertools.combinations(combos, size):
            if every_value <= {item for combo in chosen for item in combo.properties.items()}:
                return list(chosen)


def pytest_make_parametrize_id(config, val, argname):
    """A combination's test id is its own id."""
    return val.id if isinstance(val, Combination) else None


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """Every combination, baked once: {id: repo folder}."""
    root = tmp_path_factory.mktemp("baked")
    return {combo.id: bake(root / combo.id, **combo.answers) for combo in COMBINATIONS}


@pytest.fixture(scope="session")
def engines(tmp_path_factory):
    """A Docker engine with the base images, a registry standing in for Nexus, gitlab-ci-local.

    Yields the registry and the python of the platform's Airflow, which checks DAGs before a sync."""
    from engines import BASE_IMAGES, Registry, docker, ensure_base_images, start_dockerd
    from gitlab import GITLAB_CI_LOCAL

    need(GITLAB_CI_LOCAL, "gitlab-ci-local is not installed (npm install gitlab-ci-local@4.73.0)")
    need(shutil.which("docker-registry") and shutil.which("htpasswd"), "docker-registry and htpasswd are missing")
    need(start_dockerd(), "no Docker engine answers and dockerd cannot be started here")
    need(ensure_base_images(), f"no {' and '.join(BASE_IMAGES)} images and no debootstrap (as root) to make them")
    registry = Registry(tmp_path_factory.mktemp("registry")).start()
    airflow_python = ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS)
    yield registry, airflow_python
    registry.stop()
    pushed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{registry.host}/*/*").stdout.split()
    if pushed:
        docker("image", "rm", "--force", *pushed)


@pytest.fixture(scope="session")
def buildah_runners(tmp_path_factory):
    """Fresh buildah runners for pipelines that build with IMAGE_BUILDER=buildah (tests/builders.py)."""
    from builders import BuildahRunners

    return BuildahRunners(tmp_path_factory.mktemp("buildah"))


@pytest.fixture(params=["docker", "buildah"])
def builder(request, engines, buildah_runners):
    """Each image builder of the shared build job, with the environment of a fresh CI runner for it."""
    from builders import Builder

    builder = Builder(request.param, buildah_runners if request.param == "buildah" else None)
    yield builder
    if request.param == "buildah":
        buildah_runners.clean_up()


@pytest.fixture
def gitlab(tmp_path):
    """A GitLab holding the shared CI jobs and an airflow-dags repository."""
    from gitlab import FakeGitLab

    return FakeGitLab.with_shared_projects(tmp_path / "gitlab")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server with users (tests/mlflow_server.py). Launched at once, it starts while
    other fixtures work (an image build); call its ready() before talking to it."""
    from mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).launch()
    yield server
    server.stop()
