"""A new user's first day with a job repo: `make dev` against the Nexus PyPI (pypiserver with
authentication standing in, tests/support/pypi.py) with their own pip credentials, what it says when it
cannot and how it runs again once fixed; and the other make commands' traps on a fresh repo.

Most job repos here need the platform's package only (`platform_only`): make dev then takes
seconds. The whole install (Airflow and its ~160 dependencies) runs in test_private_index.py."""

import json
import re
import time

import pytest
from confiance_job import __version__ as PACKAGE_VERSION
from support import CACHE, pypi
from support.commands import need, run
from support.guide_jobs import GUIDE_JOBS
from support.template import bake
from support.user_code import with_user_code

FAIL_FAST = 30  # seconds: a make dev that cannot install says so well before any big download
PYTHON_STEP = [".venv/bin/python", "main.py"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The confiance-job wheel, built once, for the indexes of this module."""
    folder = tmp_path_factory.mktemp("wheel")
    return pypi.build_distributions(pypi.copy_of_package(folder / "package"), folder / "dist", "--wheel")


@pytest.fixture(scope="module")
def index(tmp_path_factory, wheel):
    """The stand-in index, holding confiance-job."""
    need(pypi.PYPI_SERVER, "pypiserver is not installed (re-run make .venv/bin/cookiecutter)")
    index = pypi.PrivateIndex(tmp_path_factory.mktemp("nexus")).start()
    try:
        index.upload(*wheel)
        yield index
    finally:
        index.stop()


def job_repo(folder, index, **answers):
    """A job repo baked for this index (its address without credentials, as cookiecutter.json has it),
    needing the platform's package only."""
    repo = bake(folder, pypi_index_url=index.simple_url(credentials=False), **answers)
    requirement = f"confiance-job=={PACKAGE_VERSION}"
    assert f"{requirement}\n" in (repo / "requirements-dev.txt").read_text()
    (repo / "requirements-dev.txt").write_text(f"{requirement}\n")
    (repo / "requirements.txt").write_text("")
    return repo


def pip_conf(folder, index_url):
    path = folder / "pip.conf"
    path.write_text(f"[global]\nindex-url = {index_url}\n")
    return path


def with_password(index, password):
    return index.simple_url(credentials=False).replace("://", f"://{index.user}:{password}@", 1)


def user_env(home, **extra):
    """A user's machine: their own home folder (~/.netrc, ~/.config/pip), pip reading no file of this one."""
    home.mkdir(exist_ok=True)
    return pypi.clean_pip_env(HOME=str(home), **extra)


def make_dev(repo, env):
    started = time.perf_counter()
    result = run(["make", "dev"], cwd=repo, env=env, check=False, timeout=900)
    result.seconds = time.perf_counter() - started
    result.printed = result.stdout + result.stderr
    return result


def pip_log(repo):
    log = repo / ".venv" / "pip.log"
    return log.read_text() if log.exists() else ""


def test_make_dev_says_why_it_cannot_install_and_simply_runs_again_once_fixed(tmp_path, wheel):
    need(pypi.PYPI_SERVER, "pypiserver is not installed (re-run make .venv/bin/cookiecutter)")
    index = pypi.PrivateIndex(tmp_path / "nexus")  # baked into the repo, not started yet: the index is down
    repo = job_repo(tmp_path, index, project_name="first-day")
    wrong = "not-the-password"
    env = user_env(tmp_path / "home", PIP_CONFIG_FILE=str(pip_conf(tmp_path, with_password(index, wrong))))
    host = index.url.split("/")[2]

    down = make_dev(repo, env)
    assert down.returncode != 0
    assert f"make dev: cannot reach the index http://{index.user}:****@{host}/simple/ (no answer" in down.stderr
    assert "The address comes from INDEX in the Makefile or the index-url of your pip.conf" in down.stderr
    assert down.seconds < FAIL_FAST, down.seconds
    logs = [down.printed, pip_log(repo)]

    index.start()
    try:
        index.upload(*wheel)
        refused = make_dev(repo, env)
        assert refused.returncode != 0
        assert f"make dev: the index http://{index.user}:****@{host}/simple/ refused the credentials pip sent" in (
            refused.stderr
        )
        assert f"~/.config/pip/pip.conf ([global] index-url = http://USER:PASSWORD@{host}/simple/)" in refused.stderr
        assert "~/.netrc (machine 127.0.0.1 login USER password PASSWORD)" in refused.stderr
        assert refused.seconds < FAIL_FAST, refused.seconds
        assert index.served("GET /simple/confiance-job/", 403)
        logs += [refused.printed, pip_log(repo)]

        pip_conf(tmp_path, index.simple_url())  # the fix: the right password where pip reads it
        fixed = make_dev(repo, env)  # no cleanup in between
        assert fixed.returncode == 0, fixed.printed
        version = run([repo / ".venv" / "bin" / "confiance-job", "--version"]).stdout
        assert version.strip() == f"confiance-job {PACKAGE_VERSION}"
        assert make_dev(repo, env).stdout.strip() == "make: Nothing to be done for 'dev'."
        logs += [fixed.printed, pip_log(repo), index.log.read_text()]
    finally:
        index.stop()
    assert pypi.leaked(pypi.index_secrets(index) | {wrong}, *logs) == []


def test_make_dev_says_how_to_write_a_password_that_cuts_the_index_address(tmp_path):
    index = pypi.PrivateIndex(tmp_path / "nexus")  # its password, p@ss:w/rd%, needs escaping in a URL
    repo = job_repo(tmp_path, index, project_name="raw-password")
    unescaped = index.simple_url(credentials=False).replace("://", f"://{index.user}:{index.password}@", 1)
    env = user_env(tmp_path / "home", PIP_CONFIG_FILE=str(pip_conf(tmp_path, unescaped)))
    cut = make_dev(repo, env)
    assert cut.returncode != 0
    assert "make dev: the index address is not a valid URL: a character of the password cuts it in two." in cut.stderr
    assert "write @ as %40, : as %3A, / as %2F and % as %25" in cut.stderr
    assert cut.seconds < FAIL_FAST, cut.seconds


def test_make_dev_names_a_package_the_index_does_not_have(index, tmp_path):
    repo = job_repo(tmp_path, index, project_name="not-published")
    (repo / "requirements-dev.txt").write_text("confiance-job==99.0.0\n")  # a version not published yet
    env = user_env(tmp_path / "home", PIP_CONFIG_FILE=str(pip_conf(tmp_path, index.simple_url())))
    missing = make_dev(repo, env)
    assert missing.returncode != 0
    assert (
        f"make dev: confiance-job==99.0.0 is not in the index http://{index.user}:****@{index.url.split('/')[2]}"
        f"/simple/ (versions there: {PACKAGE_VERSION})." in missing.stderr
    )
    assert "Check its name and version in requirements.txt and requirements-dev.txt" in missing.stderr
    assert missing.seconds < FAIL_FAST, missing.seconds
    assert pypi.leaked(pypi.index_secrets(index), missing.printed, pip_log(repo)) == []


def test_make_dev_reads_the_credentials_from_netrc_and_keeps_to_the_nexus_index(index, tmp_path):
    """Credentials in ~/.netrc; the user's pip.conf points at another index (say, their team's mirror),
    which make dev must not use instead of the Nexus one."""
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {index.user} password {index.password}\n")
    netrc.chmod(0o600)
    elsewhere = pypi.PrivateIndex(tmp_path / "elsewhere").simple_url(credentials=False)  # another port, nothing there
    env = user_env(home, PIP_CONFIG_FILE=str(pip_conf(tmp_path, elsewhere)))
    repo = job_repo(tmp_path, index, project_name="with-netrc")
    dev = make_dev(repo, env)
    assert dev.returncode == 0, dev.printed
    assert (repo / ".venv" / "bin" / "confiance-job").exists()
    assert f"Looking in indexes: {index.simple_url(credentials=False)}" in dev.stderr
    assert pypi.leaked(pypi.index_secrets(index), dev.printed, pip_log(repo)) == []


def test_make_dev_reads_the_credentials_from_pip_index_url_as_ci_sets_it(index, tmp_path):
    """PIP_INDEX_URL wins over the Makefile's index, wherever it points (the job repo's CI test job)."""
    repo = bake(tmp_path, project_name="in-ci", pypi_index_url="https://nexus.invalid/simple")
    (repo / "requirements-dev.txt").write_text(f"confiance-job=={PACKAGE_VERSION}\n")
    dev = make_dev(repo, user_env(tmp_path / "home", PIP_INDEX_URL=index.simple_url()))
    assert dev.returncode == 0, dev.printed
    assert pypi.leaked(pypi.index_secrets(index), dev.printed, pip_log(repo)) == []


def test_make_lint_says_when_git_tracks_nothing_yet(index, tmp_path):
    repo = job_repo(tmp_path, index, project_name="lint-first")
    env = user_env(tmp_path / "home", PIP_CONFIG_FILE=str(pip_conf(tmp_path, index.simple_url())))
    dev = make_dev(repo, env)
    assert dev.returncode == 0, dev.printed
    assert "make dev: no git repository yet; after git init, .venv/bin/pre-commit install" in dev.stderr
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    lint = run(["make", "lint"], cwd=repo, env=env, check=False)
    assert lint.returncode != 0
    assert "make lint: git tracks no file here yet, so there is nothing to check: git add ." in lint.stderr


@pytest.mark.parametrize("steps", ["run", "prepare,train,evaluate"])
def test_make_help_shows_this_jobs_image_and_trigger_fields(tmp_path, steps):
    serving = {"mlflow_tracking_uri": "https://mlflow.example.org", "serving": "mlflow"}  # the longest names
    repo = bake(tmp_path, project_name="helpful", steps=steps, **serving)
    shown = run(["make", "help"], cwd=repo).stdout
    assert "$(" not in shown
    assert re.search(r"^  make build +build the image repo.irtsysx.fr:5086/confiance/helpful:dev", shown, re.M)
    columns = {len(re.match(r"  make [a-z-]+ +", line)[0]) for line in shown.splitlines()}
    assert len(columns) == 1, shown  # every command's text starts in one column, after the longest name
    if steps == "run":
        assert 'make trigger TAG=0.2.0 [COMMAND="python main.py run --dry-run"]' in shown
        assert "make run STEP=run\n" in shown
    else:
        assert "COMMAND=" not in shown
        assert """[CONF='{"prepare_command": "python main.py prepare --dry-run"}']""" in shown
        assert "make run STEP=prepare (or train, evaluate)" in shown
        ignored = run(["make", "trigger", "COMMAND=python main.py train"], cwd=repo, check=False)
        assert ignored.returncode != 0 and "COMMAND is for one-step jobs" in ignored.stderr


# --- the first day of the guide's Air Liquide job, with a data scientist's own code ----------


def first_day_commands(readme):
    """The commands of the job README's First day, in order, as a user copies them."""
    block = re.search(r"^## First day\n.*?^\*\*2\. .*?^```\n(.*?)^```", readme, re.S | re.M).group(1)
    return block.splitlines()


def test_the_air_liquide_jobs_first_day_runs_as_its_readme_says(index, tmp_path):
    """A wrong password first (make dev stops before any big download), then the README's commands
    as written: make dev installs Airflow, pandas, scikit-learn and MLflow through the index."""
    answers = GUIDE_JOBS["air-liquide"]
    repo = with_user_code(bake(tmp_path, pypi_index_url=index.simple_url(credentials=False), **answers))
    conf = pip_conf(tmp_path, with_password(index, "not-the-password"))
    env = user_env(
        tmp_path / "home",
        PIP_CONFIG_FILE=str(conf),
        PIP_CACHE_DIR=str(CACHE / "pip-dev-setup"),
        PRE_COMMIT_HOME=str(CACHE / "pre-commit"),
    )
    env = {name: value for name, value in env.items() if not name.startswith("MLFLOW_")}

    refused = make_dev(repo, env)
    assert refused.returncode != 0
    assert "refused the credentials pip sent (HTTP 401/403" in refused.stderr
    assert refused.seconds < FAIL_FAST, refused.seconds
    assert not index.served("GET /simple/apache-airflow/", 303) and not index.served("GET /simple/pandas/", 303)
    printed = [refused.printed, pip_log(repo)]

    pip_conf(tmp_path, index.simple_url())  # the password, right this time
    commands = first_day_commands((repo / "README.md").read_text())
    steps = answers["steps"].split(",")
    assert [line.split("#")[0].split() for line in commands if line.startswith(".venv/bin/python")] == [
        part for step in steps for part in (PYTHON_STEP + [step, "--dry-run"], PYTHON_STEP + [step])
    ]
    seconds = {}
    for command in commands:
        started = time.perf_counter()
        result = run(["bash", "-c", command], cwd=repo, env=env, check=False, timeout=1800)
        seconds[command.split("#")[0].strip()] = round(time.perf_counter() - started, 1)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        printed += [result.stdout, result.stderr]
    assert (repo / "data" / "runs" / "local" / "predictions.csv").is_file()
    pods = json.loads((repo / "pods.json").read_text())
    assert [pod["metadata"]["labels"]["task_id"] for pod in pods["items"]] == steps
    assert "pods.json" not in run(["git", "status", "--porcelain"], cwd=repo).stdout  # ignored: never committed
    assert index.served("GET /simple/apache-airflow/", 303) and index.served("GET /simple/pandas/", 303)
    assert pypi.leaked(pypi.index_secrets(index) | {"not-the-password"}, *printed, pip_log(repo)) == []
    print(f"first day: {seconds}")
