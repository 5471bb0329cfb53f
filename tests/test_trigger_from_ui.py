"""The whole story in a running Airflow: a release tag syncs the DAG, Airflow shows
it, a person triggers it from the form or from a terminal, bad values are refused
before any run, and the pods of a run really run the released image."""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
from confiance_job.trigger import Airflow
from support import CACHE, ROOT
from support.airflow_server import PASSWORD, USER, Airflow2Server, AirflowServer, GitSync
from support.commands import need, run, wait_until
from support.gitlab import DAGS_PROJECT, FakeGitLab, git, make_job_repo
from support.pods import PODMAN, PodRunner
from support.release import release
from support.template import with_short_retry_delay
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engines")]

DAG_ID = "ui-job"
TRIGGER_FORM = Path(__file__).parent / "helpers" / "trigger_form.py"
SWEEP_FORM = Path(__file__).parent / "helpers" / "sweep_form.py"
ARTIFACTS = CACHE / "artifacts"


@pytest.fixture(scope="module")
def story(engines, tmp_path_factory):
    """Airflow running and synced from the dags repo; then `git tag v0.1.0` of a two-step job."""
    registry, airflow2_python = engines
    root = tmp_path_factory.mktemp("story")
    gitlab = FakeGitLab.with_shared_projects(root / "gitlab")
    airflow3_python = ensure_venv("airflow3", AIRFLOW_LINES["airflow3"] + AIRFLOW_TOOLS)
    sync = GitSync(gitlab.bare_repo(DAGS_PROJECT), root / "dags")
    sync.start()
    airflow = AirflowServer(airflow3_python.parent / "airflow", root / "airflow", root / "dags").start()
    try:
        repo = make_job_repo(root / "jobs", registry, project_name=DAG_ID, steps="prepare,train", sweep_steps="train")
        dag = repo / "dags" / f"{DAG_ID}.py"  # a step with no cluster to run on fails in seconds, retry included
        dag.write_text(with_short_retry_delay(dag.read_text()))
        git("commit", "-q", "-am", "Retry a failed step after 1 s", cwd=repo)
        tagged = time.perf_counter()
        pipeline = release(repo, gitlab, registry, airflow2_python)
        assert pipeline.returncode == 0, pipeline.output
        api = Airflow(airflow.url, USER, PASSWORD, DAG_ID)
        dag = wait_until(lambda: api.request("GET", f"/dags/{DAG_ID}"), timeout=180)
        visible_after = time.perf_counter() - tagged
        print(
            f"Airflow healthy in {airflow.start_seconds:.0f} s, {airflow.memory_mib():.0f} MiB; "
            f"tag to DAG visible {visible_after:.0f} s (pipeline {pipeline.seconds:.0f} s)"
        )
        yield {
            "airflow": airflow,
            "api": api,
            "dag": dag,
            "repo": repo,
            "registry": registry,
            "python": airflow3_python,
            "root": root,
        }
    finally:
        airflow.stop()
        sync.stop()


def trigger(story, *argv, password=PASSWORD):
    """The job repo's `make trigger`, as a user runs it."""
    env = {**os.environ, "AIRFLOW_URL": story["airflow"].url, "AIRFLOW_USER": USER, "AIRFLOW_PASSWORD": password}
    return run([story["python"].parent / "confiance-job", "trigger", *argv], cwd=story["repo"], env=env, check=False)


def run_ids(story):
    runs = story["api"].request("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]
    return {r["dag_run_id"] for r in runs}


def test_the_released_dag_shows_up_ready_to_trigger(story):
    api, dag = story["api"], story["dag"]
    assert api.request("GET", "/importErrors")["total_entries"] == 0
    assert sorted(tag["name"] for tag in dag["tags"]) == ["confiance-job", DAG_ID]
    assert dag["is_paused"] is False  # only runs when triggered: no reason to make users unpause it
    details = api.request("GET", f"/dags/{DAG_ID}/details")
    assert details["params"]["image_tag"]["value"] == "0.1.0"  # stamped by the release


def test_the_trigger_helper_starts_a_run_with_the_image_command_and_env(story):
    command = "python main.py prepare --dry-run"
    result = trigger(story, "--tag", "v0.1.0", "--env", "EPOCHS=3", "--conf", json.dumps({"prepare_command": command}))
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[3]
    assert f"{story['airflow'].url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}" in result.stdout
    path = f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/prepare"

    def rendered():
        fields = story["api"].request("GET", path)["rendered_fields"]
        assert fields.get("image")
        return fields

    fields = wait_until(rendered, timeout=120, every=2)
    assert fields["image"] == f"{story['registry'].host}/confiance/{DAG_ID}:0.1.0"
    assert fields["arguments"] == [command]
    assert "EPOCHS" in str(fields["env_vars"]) and "'3'" in str(fields["env_vars"])
    story["api"].request("PATCH", f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}", {"state": "failed"})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tag", "bad tag"], 'image_tag: "bad tag" is not an image tag'),
        (["--conf", '{"env": {"EPOCHS": 3}}'], 'env: every value must be text: "EPOCHS": 3'),
        (["--conf", '{"env": {"1BAD": "x"}}'], 'env: "1BAD": not a variable name'),
        (["--cpu", "two"], 'cpu: "two" is not a Kubernetes quantity. For example: "4" or "500m"'),
        (["--memory", "8 GB"], 'memory: "8 GB" is not a Kubernetes quantity'),
        (["--conf", '{"prepare_command": ["python", "main.py"]}'], "prepare_command: must be empty or text, not ["),
    ],
    ids=["tag-with-space", "env-number", "env-bad-name", "cpu-word", "memory-with-space", "command-list"],
)
def test_an_invalid_value_is_refused_and_starts_nothing(story, argv, message):
    before = run_ids(story)
    result = trigger(story, *argv)
    assert result.returncode == 1
    # Checked against the form's schemas that Airflow serves, before any run is asked for: one line per field.
    assert "trigger: the Trigger form would refuse these values:" in result.stderr and message in result.stderr
    assert run_ids(story) == before


def test_the_trigger_helper_explains_typos_and_bad_credentials(story):
    typo = trigger(story, "--conf", '{"image-tag": "0.1.0"}')
    assert typo.returncode == 1 and "the form has no field image-tag; it has: cpu, env, image_tag" in typo.stderr
    refused = trigger(story, "--tag", "0.1.0", password="wrong")
    assert refused.returncode == 1 and "Airflow refused the user 'admin'" in refused.stderr


def test_a_person_can_use_the_trigger_form(story):
    need(Path("/usr/bin/chromium").exists(), "Debian's chromium is not installed (apt-get install chromium)")
    playwright_python = ensure_venv("playwright", ["playwright==1.65.2"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "trigger-form.png"
    before = run_ids(story)
    command = [playwright_python, TRIGGER_FORM, story["airflow"].url, USER, PASSWORD, DAG_ID, screenshot]
    form = json.loads(run(command, timeout=300).stdout)

    params = story["api"].request("GET", f"/dags/{DAG_ID}/details")["params"]
    assert list(form["fields"]) == list(params)
    for name, shown in form["fields"].items():
        assert shown["title"] == params[name]["schema"]["title"]
        assert shown["description"] == params[name]["description"]
    assert form["trigger_enabled"], "a field is wrongly required: the defaults cannot be submitted"
    assert form["trigger"]["status"] == 200
    assert form["trigger"]["sent"]["conf"]["image_tag"] == "0.1.0"
    (new_run,) = run_ids(story) - before
    story["api"].request("PATCH", f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(new_run, safe='')}", {"state": "failed"})
    assert screenshot.stat().st_size > 10_000
    assert "docs/trigger-form.png" in (ROOT / "README.md").read_text() and (ROOT / "docs" / "trigger-form.png").exists()


def test_a_person_enters_a_sweep_of_train_in_the_trigger_form(story):
    need(Path("/usr/bin/chromium").exists(), "Debian's chromium is not installed (apt-get install chromium)")
    playwright_python = ensure_venv("playwright", ["playwright==1.65.2"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sweep = [{"LR": "0.1"}, {"LR": "0.01"}, {"LR": "0.001"}]
    before = run_ids(story)
    command = [playwright_python, SWEEP_FORM, story["airflow"].url, USER, PASSWORD, DAG_ID, "train_sweep"]
    form = json.loads(run([*command, json.dumps(sweep), ARTIFACTS / "sweep-form.png"], timeout=300).stdout)

    param = story["api"].request("GET", f"/dags/{DAG_ID}/details")["params"]["train_sweep"]
    assert form["field"] == {"title": "Sweep of step train", "description": param["description"]}
    assert param["description"].startswith("A JSON list of env objects: train runs as one pod per object, 4 at a time")
    assert form["trigger"]["status"] == 200, form
    assert form["trigger"]["sent"]["conf"]["train_sweep"] == sweep
    (new_run,) = run_ids(story) - before
    story["api"].request("PATCH", f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(new_run, safe='')}", {"state": "failed"})
    # An empty list: the form sends it, Airflow refuses it (400) and says why in the dialog; no run.
    empty = json.loads(run([*command, "[]", ARTIFACTS / "sweep-form-empty.png"], timeout=300).stdout)
    assert empty["trigger"]["status"] == 400 and "should be non-empty" in " ".join(empty["errors"]), empty
    assert run_ids(story) == before | {new_run}


def rendered_pods(story, conf):
    """The pods the operator builds for this conf (the job repo's `make render`)."""
    output = run([story["python"].parent / "confiance-job", "render", json.dumps(conf)], cwd=story["repo"]).stdout
    return json.loads(output)["items"]


@pytest.fixture
def pod_runner(story, tmp_path):
    need(PODMAN, "podman is not installed (apt-get install podman catatonit)")
    nfs = tmp_path / "nfs"
    nfs.mkdir()
    nfs.chmod(0o777)  # the image runs as uid 1000, as on the real share
    return PodRunner(tmp_path / "podman", story["registry"]), nfs


def test_the_pods_of_a_run_really_run_the_released_image(story, pod_runner):
    runner, nfs = pod_runner
    conf = {"image_tag": "0.1.0", "env": {"GREETING": "bonjour"}}
    assert trigger(story, "--conf", json.dumps(conf)).returncode == 0  # Airflow accepts it
    results = [runner.run(pod, nfs) for pod in rendered_pods(story, conf)]
    assert [result.exit_code for result in results] == [0, 0], [result.logs for result in results]
    assert "step prepare done" in results[0].logs
    assert "step train done" in results[1].logs
    train_output = json.loads((nfs / DAG_ID / "runs" / "manual__render" / "train.json").read_text())
    assert train_output["after"] == "prepare"  # the second step read what the first wrote


def test_a_failing_command_gives_its_exit_code(story, pod_runner):
    runner, nfs = pod_runner
    (pod, _) = rendered_pods(story, {"prepare_command": "python main.py prepare && exit 3"})
    assert runner.run(pod, nfs).exit_code == 3


def test_a_pod_without_the_registry_credentials_cannot_pull(story, pod_runner, tmp_path):
    _, nfs = pod_runner
    (pod, _) = rendered_pods(story, {})
    outsider = PodRunner(tmp_path / "outsider", SimpleNamespace(user="someone", password="wrong"))
    result = outsider.run(pod, nfs)
    assert result.exit_code is None and "unauthorized" in result.logs
    shutil.rmtree(tmp_path / "outsider")


@pytest.fixture(scope="module")
def airflow2(story):
    """Airflow 2 (the platform's line) serving the same synced DAGs folder."""
    python = ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS)
    server = Airflow2Server(python.parent / "airflow", story["root"] / "airflow2", story["root"] / "dags").start()
    yield server
    server.stop()


def test_the_trigger_helper_works_on_airflow_2(story, airflow2):
    env = {**os.environ, "AIRFLOW_URL": airflow2.url, "AIRFLOW_USER": USER, "AIRFLOW_PASSWORD": PASSWORD}
    helper = [story["python"].parent / "confiance-job", "trigger"]
    started = run([*helper, "--tag", "0.1.0", "--env", "EPOCHS=3"], cwd=story["repo"], env=env)
    assert f"{airflow2.url}/dags/{DAG_ID}/grid?dag_run_id=" in started.stdout
    refused = run([*helper, "--cpu", "two"], cwd=story["repo"], env=env, check=False)
    assert refused.returncode == 1 and 'cpu: "two" is not a Kubernetes quantity' in refused.stderr
    several = run([*helper, "--command", "echo hi"], cwd=story["repo"], env=env, check=False)
    assert several.returncode == 1 and "this job has several steps" in several.stderr
    wrong = run([*helper, "--tag", "0.1.0"], cwd=story["repo"], env={**env, "AIRFLOW_PASSWORD": "wrong"}, check=False)
    assert wrong.returncode == 1 and "Airflow refused the credentials" in wrong.stderr
    api = Airflow(airflow2.url, USER, PASSWORD, DAG_ID)
    runs = api.request("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
    assert [dag_run["conf"] for dag_run in runs] == [{"image_tag": "0.1.0", "env": {"EPOCHS": "3"}}]


# ---- Following a run to its end: `make trigger WAIT=1` ----


def start_waiting(url, story, *argv):
    """`confiance-job trigger --wait` in the background; returns the process (its output in .stdout/.stderr)."""
    env = {**os.environ, "AIRFLOW_URL": url, "AIRFLOW_USER": USER, "AIRFLOW_PASSWORD": PASSWORD}
    command = [story["python"].parent / "confiance-job", "trigger", "--wait", "--poll", "1", *map(str, argv)]
    return subprocess.Popen(
        command, cwd=story["repo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def started_run_id(process):
    """The run id from the first line the helper prints: 'Started <dag> run <run id>'."""
    return process.stdout.readline().split()[3]


def finish(process, timeout):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_waiting_reports_the_failed_step_when_there_is_no_cluster(story):
    """Here the pod cannot start (no cluster): the step fails, is retried once as the DAG says, then fails."""
    started = time.perf_counter()
    process = start_waiting(story["airflow"].url, story, "--tag", "0.1.0", "--timeout", "600")
    run_id = started_run_id(process)
    code, out, err = finish(process, timeout=660)
    assert code == 1, (out, err)
    assert "  prepare: failed" in out and f"Run {run_id}: failed" in out
    quoted = urllib.parse.quote(run_id, safe="")
    assert f"log of prepare: {story['airflow'].url}/dags/{DAG_ID}/runs/{quoted}/tasks/prepare" in out
    assert f"run {run_id} failed: step prepare failed" in err
    print(f"--wait followed a failing run for {time.perf_counter() - started:.0f} s")


def test_waiting_exits_0_when_every_step_succeeds(story):
    api, path = story["api"], f"/dags/{DAG_ID}"
    api.request("PATCH", path, {"is_paused": True})  # nothing runs while the steps are marked done
    try:
        process = start_waiting(story["airflow"].url, story, "--tag", "0.1.0", "--timeout", "300")
        run = f"{path}/dagRuns/{urllib.parse.quote(started_run_id(process), safe='')}"
        for step in ("prepare", "train_sweep", "train"):  # train: the one pod of a sweep left empty
            api.request("PATCH", f"{run}/taskInstances/{step}", {"new_state": "success"})
        marked = time.perf_counter()
    finally:
        api.request("PATCH", path, {"is_paused": False})  # the scheduler now sees every step done
    code, out, err = finish(process, timeout=300)
    assert code == 0, (out, err)
    assert "  train: success" in out and ": success\n" in out
    print(f"--wait noticed the end {time.perf_counter() - marked:.1f} s after the steps were marked done")


def test_waiting_follows_a_run_to_its_end_on_airflow_2(story, airflow2):
    process = start_waiting(airflow2.url, story, "--tag", "0.1.0", "--timeout", "120")
    run_id = started_run_id(process)
    api = Airflow(airflow2.url, USER, PASSWORD, DAG_ID)
    wait_until(lambda: "prepare" in api.run_state(run_id)[1], timeout=30)
    api.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}", {"state": "failed"})
    ended = time.perf_counter()
    code, out, err = finish(process, timeout=120)
    assert code == 1 and f"Run {run_id}: failed" in out and f"run {run_id} failed" in err
    assert f"{airflow2.url}/dags/{DAG_ID}/grid?dag_run_id=" in out
    print(f"--wait noticed the end on Airflow 2 {time.perf_counter() - ended:.1f} s after it")
