"""The Air Liquide job as its data scientist writes it (tests/user_job: pandas, scikit-learn,
MLflow), baked with the guide's answers and a tracking server, built into an image, and its pods
played by podman against a real MLflow server with users (tests/support/mlflow_server.py): one Airflow
run is one MLflow run, a retry reopens it, predict loads the model train logged, and the MLflow
password shows nowhere."""

import contextlib
import copy
import csv
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.commands import need, run
from support.guide_jobs import GUIDE_JOBS
from support.mlflow_server import metrics, params, tags
from support.template import bake
from support.user_code import with_user_code
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv

RENDER_RUNS = Path(__file__).parent / "helpers" / "render_runs.py"
EXPERIMENT = "air-liquide-timeseries"  # the DAG's MLFLOW_EXPERIMENT_NAME: the job's slug
FIRST, SECOND = "manual__2026-12-01T06:00:00+00:00", "manual__second"

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("engines")]


@pytest.fixture(scope="module")
def job(engines, mlflow_server, tmp_path_factory):
    """The baked repo with the user's code, requirements and tests in place, trusting this network's CA."""
    answers = {**GUIDE_JOBS["air-liquide"], "mlflow_tracking_uri": mlflow_server.uri, "extra_ca_certificates": True}
    answers["serving"] = "mlflow"  # pipeline 2: the model train logs, served (test_serving_story below)
    repo = bake(tmp_path_factory.mktemp("job"), docker_registry=engines[0].host, **answers)
    for certificate in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(certificate, repo / "certs")
    return with_user_code(repo)


@pytest.fixture(scope="module")
def job_tests(job):
    """The job repo's tests, started in the background (they need no engine): pytest in a venv with the job's
    requirements and the Airflow line its requirements-dev.txt pins, as `make test` has them after `make dev`."""
    dev_requirements = (job / "requirements-dev.txt").read_text().splitlines()
    line = next(name for name, packages in AIRFLOW_LINES.items() if packages[0] in dev_requirements)
    requirements = [word for word in (job / "requirements.txt").read_text().split() if not word.startswith("#")]
    python = ensure_venv(f"{line}-user-job", AIRFLOW_LINES[line] + AIRFLOW_TOOLS + requirements)
    env = {name: value for name, value in os.environ.items() if not name.startswith("MLFLOW_")}
    command = [python, "-m", "pytest", "-v", "-p", "no:cacheprovider"]
    process = subprocess.Popen(command, cwd=job, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield process, time.perf_counter()
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def image(engines, job, tmp_path_factory):
    """`make build`'s image (pandas, scikit-learn and mlflow-skinny from PyPI), pushed where the pods pull it."""
    from support.engines import docker

    registry = engines[0]
    tag = f"{registry.host}/confiance/{job.name}:0.1.0"
    started = time.perf_counter()
    build = ["build", "--progress", "plain", "--network", "host", "--tag", tag, job]
    docker(*build, env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=900)
    built = time.perf_counter()
    docker("push", tag, env=registry.docker_login(tmp_path_factory.mktemp("docker-config")))
    print(f"image built in {built - started:.1f} s, pushed in {time.perf_counter() - built:.1f} s")
    return tag


@pytest.fixture(scope="module")
def pods(engines, job):
    """{run id: {step: pod}}, as the DAG's operator builds them."""
    dag = job / "dags" / f"{job.name}.py"
    return json.loads(run([engines[1], RENDER_RUNS, dag, json.dumps({FIRST: {}, SECOND: {}})]).stdout)


def retry_of(pod):
    """The same pod as Airflow starts it when the task is retried: only its try number changes."""
    pod = copy.deepcopy(pod)
    for var in pod["spec"]["containers"][0]["env"]:
        if var["name"] == "TRY_NUMBER":
            var["value"] = "2"
    return pod


@pytest.fixture(scope="module")
def played(engines, job_tests, image, pods, mlflow_server, tmp_path_factory):
    """The first run's three pods, a retry of its train pod, then the second run's: {name: result}.
    The pods share this machine's network, to reach the tracking server on loopback.
    (job_tests first: the job repo's tests run meanwhile.)"""
    from support.pods import PODMAN, PodRunner

    need(PODMAN, "podman is not installed (apt-get install podman catatonit)")
    mlflow_server.ready()
    nfs = tmp_path_factory.mktemp("nfs")
    nfs.chmod(0o777)  # the image runs as uid 1000, as on the real share
    runner = PodRunner(tmp_path_factory.mktemp("podman"), engines[0], network="host")
    credentials = {"MLFLOW_TRACKING_USERNAME": mlflow_server.user, "MLFLOW_TRACKING_PASSWORD": mlflow_server.password}
    plays = [(f"{FIRST} {step}", pod) for step, pod in pods[FIRST].items()]
    plays += [(f"{FIRST} train retry", retry_of(pods[FIRST]["train"]))]
    plays += [(f"{SECOND} {step}", pod) for step, pod in pods[SECOND].items()]
    results, seconds = {}, {}
    for name, pod in plays:
        started = time.perf_counter()
        results[name] = runner.run(pod, nfs, secrets={"mlflow-credentials": credentials})
        seconds[name] = round(time.perf_counter() - started, 1)
        assert results[name].exit_code == 0, f"{name}:\n{results[name].logs}"
    print(f"{len(plays)} pods played in {sum(seconds.values()):.1f} s: {seconds}")
    return nfs, results


def run_folder(nfs, pod):
    """The host folder of the pod's RUN_DIR (the DAG's; the NFS share is `nfs` here)."""
    env = {var["name"]: var.get("value") for var in pod["spec"]["containers"][0]["env"]}
    return nfs / Path(env["RUN_DIR"]).relative_to("/nfsdata")


def the_run(mlflow_server, run_id):
    runs = mlflow_server.runs(EXPERIMENT, run_id)
    assert len(runs) == 1, f"{len(runs)} MLflow runs for {run_id}"
    return runs[0]


def test_every_pod_of_two_runs_and_a_retry_exits_0(played):
    nfs, results = played
    assert list(results) == [
        *(f"{FIRST} {step}" for step in ["prepare", "train", "predict"]),
        f"{FIRST} train retry",
        *(f"{SECOND} {step}" for step in ["prepare", "train", "predict"]),
    ]
    assert {result.exit_code for result in results.values()} == {0}


def test_one_airflow_run_is_one_mlflow_run_holding_what_train_logged(played, mlflow_server):
    run = the_run(mlflow_server, FIRST)
    assert tags(run)["airflow_run_id"] == FIRST and tags(run)["image_tag"] == "0.1.0"
    assert run["info"]["run_name"] == FIRST and tags(run)["mlflow.user"] == mlflow_server.user
    assert params(run) == {
        "n_estimators": "150",
        "max_depth": "3",
        "learning_rate": "0.1",
        "random_state": "0",
        "lags": "1,2,3,24,168",
        "train_rows": "1104",
    }
    assert set(metrics(run)) == {"mae", "rmse"} and 0 < metrics(run)["mae"] < 5
    run_id = run["info"]["run_id"]
    models = [model["info"] for model in mlflow_server.logged_models(EXPERIMENT)]
    ours = [model for model in models if model["source_run_id"] == run_id]
    assert ours and {model["name"] for model in ours} == {"model"}
    assert {model["status"] for model in ours} == {"LOGGED_MODEL_READY"}
    stored = mlflow_server.folder / "artifacts" / run["info"]["experiment_id"] / "models" / ours[0]["model_id"]
    assert (stored / "artifacts" / "MLmodel").is_file()
    assert "predictions.csv" in mlflow_server.artifacts(run_id)


def test_predict_loaded_the_model_train_logged_in_that_run(played, pods, mlflow_server):
    nfs, results = played
    run = the_run(mlflow_server, FIRST)
    run_id = run["info"]["run_id"]
    assert f"model logged to MLflow run {run_id}" in results[f"{FIRST} train"].logs
    assert f"loaded model runs:/{run_id}/model" in results[f"{FIRST} predict"].logs
    folder = run_folder(nfs, pods[FIRST]["predict"])
    assert folder.name == "manual__2026-12-01T06%3A00%3A00%2B00%3A00"
    assert sorted(path.name for path in folder.iterdir()) == ["features.csv", "predictions.csv"]  # no model file
    # The forecast's error is the one train measured on the same week: the same model made both.
    printed = re.search(r"wrote 168 predictions to \S+ \(MAE ([\d.]+)\)", results[f"{FIRST} predict"].logs)
    assert printed and float(printed.group(1)) == pytest.approx(metrics(run)["mae"], abs=0.006)


def test_a_retry_of_train_reopens_the_same_mlflow_run(played, mlflow_server):
    nfs, results = played
    run_id = the_run(mlflow_server, FIRST)["info"]["run_id"]
    retry = results[f"{FIRST} train retry"].logs
    assert f"model logged to MLflow run {run_id}" in retry


def test_a_second_airflow_run_is_a_second_mlflow_run(played, pods, mlflow_server):
    nfs, _ = played
    first, second = the_run(mlflow_server, FIRST), the_run(mlflow_server, SECOND)
    assert first["info"]["run_id"] != second["info"]["run_id"]
    assert len(mlflow_server.runs(EXPERIMENT)) == 2
    assert (run_folder(nfs, pods[SECOND]["predict"]) / "predictions.csv").is_file()


def test_the_mlflow_password_is_in_no_log_manifest_dag_or_image(played, pods, job, image, mlflow_server, tmp_path):
    from support.leaks import image_leaks, secret_forms

    _, results = played
    secrets = secret_forms(mlflow_server.password, basic_auth=[(mlflow_server.user, mlflow_server.password)])
    texts = {name: result.logs for name, result in results.items()}
    texts["rendered pods"] = json.dumps(pods)
    texts["DAG"] = (job / "dags" / f"{job.name}.py").read_text()
    assert [name for name, text in texts.items() if any(secret in text for secret in secrets)] == []
    assert image_leaks(image, secrets, tmp_path) == []


def test_the_job_repos_own_tests_pass_with_the_users_code(job_tests):
    """`make test` of the job repo: the generated contract and DAG tests, and the user's own tests."""
    process, started = job_tests
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    for test in [
        "test_main.py::test_every_step_runs_in_order_and_exits_0",
        "test_dag.py::",
        "test_forecast.py::test_one_airflow_run_is_one_mlflow_run_even_with_a_retry",
    ]:
        assert re.search(rf"tests/{re.escape(test)}\S* PASSED", output), test
    print(f"job repo tests: {output.strip().splitlines()[-1]} ({time.perf_counter() - started:.1f} s)")


# ---- Pipeline 2: the model train logged, served by the serving DAG's Deployment (podman plays its pod). ----


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serving_pod(engines, job, model_uri, port):
    """The pod of the Deployment a deploy of `model_uri` applies, as `make render-serve` prints it. On the
    host's network (the tracking server is on loopback) it listens on a free port instead of its own 8080."""
    cli = Path(engines[1]).parent / "confiance-job"
    shown = run([cli, "render", "--serve", json.dumps({"model_uri": model_uri})], cwd=job).stdout
    deployment = json.loads(shown)["items"][0]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": deployment["metadata"]["name"]}}
    pod["spec"] = copy.deepcopy(deployment["spec"]["template"]["spec"])
    container = pod["spec"]["containers"][0]
    del container["ports"]  # podman's host network maps no ports: the server listens on the host's
    for probe in ("readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = port
    for var in container["env"]:
        var["value"] = str(port) if var["name"] == "PORT" else var["value"]
    return pod, container


def request(port, path, body=None, content_type="application/json"):
    """(status, text) of one HTTP request to the server."""
    data = None if body is None else json.dumps(body).encode()
    asked = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST" if data else "GET")
    asked.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(asked, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None, ""


@contextlib.contextmanager
def serving(engines, job, mlflow_server, tmp_path_factory, model_uri):
    """The serving pod, played by podman: yields (runner, port, container name, path of its manifest)."""
    from support.pods import PODMAN, PodRunner

    need(PODMAN, "podman is not installed (apt-get install podman catatonit)")
    port = free_port()
    pod, container = serving_pod(engines, job, model_uri, port)
    runner = PodRunner(tmp_path_factory.mktemp("podman-serve"), engines[0], network="host")
    path = runner.folder / "serve.yaml"
    path.write_text(json.dumps(pod))
    credentials = {"MLFLOW_TRACKING_USERNAME": mlflow_server.user, "MLFLOW_TRACKING_PASSWORD": mlflow_server.password}
    with runner.secrets_in_podman({"mlflow-credentials": credentials}):
        played = runner.play(path)
    assert played.returncode == 0, played.stdout + played.stderr
    try:
        yield runner, port, f"{pod['metadata']['name']}-{container['name']}", container
    finally:
        runner.podman("kube", "down", path)


def seconds_until_ready(runner, port, name, container):
    """Seconds until the server answers its readiness probe (the probe the Deployment gives the kubelet)."""
    started, probe = time.perf_counter(), container["readinessProbe"]["httpGet"]["path"]
    while request(port, probe)[0] != 200:
        state = runner.podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip()
        assert state == "running" and time.perf_counter() - started < 300, runner.podman("logs", name).stderr
        time.sleep(0.5)
    return time.perf_counter() - started


GUIDE_CONTENT_TYPE = "application/json; format=pandas-records"  # MLflow 1.x, as the guide's curl sends it


@pytest.fixture(scope="module")
def served(played, engines, job, pods, mlflow_server, tmp_path_factory):
    """The model of the first run's train, served: time to ready, the answers to 100 requests, the guide's form."""
    nfs, _ = played
    model_uri = f"runs:/{the_run(mlflow_server, FIRST)['info']['run_id']}/model"
    features = run_folder(nfs, pods[FIRST]["train"]) / "features.csv"
    rows = [
        {key: float(value) for key, value in row.items() if key not in ("timestamp", "demand")}
        for row in csv.DictReader(features.open())
    ][-3:]
    with serving(engines, job, mlflow_server, tmp_path_factory, model_uri) as (runner, port, name, container):
        ready = seconds_until_ready(runner, port, name, container)
        latencies, answers = [], []
        for _ in range(100):
            sent = time.perf_counter()
            answers.append(request(port, "/invocations", {"dataframe_records": rows}))
            latencies.append(time.perf_counter() - sent)
        guide_form = request(port, "/invocations", rows, GUIDE_CONTENT_TYPE)
        logs = runner.podman("logs", name)
    p50 = statistics.median(latencies) * 1000
    print(f"{model_uri}: ready {ready:.1f} s after the pod started; /invocations p50 {p50:.1f} ms over 100")
    return {"model_uri": model_uri, "answers": answers, "guide_form": guide_form, "logs": logs.stdout + logs.stderr}


def test_the_served_model_answers_the_guides_request_with_predictions(served):
    statuses = {status for status, _ in served["answers"]}
    assert statuses == {200}, served["answers"][:3]
    predictions = json.loads(served["answers"][0][1])["predictions"]
    assert len(predictions) == 3 and all(isinstance(value, float) for value in predictions)
    assert f"serving {served['model_uri']}" in served["logs"]


def test_the_guides_mlflow_1_content_type_is_refused_with_the_reason_the_readme_gives(served):
    status, text = served["guide_form"]
    assert status in (400, 415) and "Unrecognized content type parameters: format" in text, text


def test_latest_serves_the_model_of_the_experiments_last_finished_run(
    served, engines, job, mlflow_server, tmp_path_factory
):
    finished = [run for run in mlflow_server.runs(EXPERIMENT) if run["info"]["status"] == "FINISHED"]
    newest = max(finished, key=lambda run: int(run["info"]["start_time"]))["info"]["run_id"]
    assert newest == the_run(mlflow_server, SECOND)["info"]["run_id"]  # the second Airflow run trained last
    with serving(engines, job, mlflow_server, tmp_path_factory, f"latest:{EXPERIMENT}") as (runner, port, name, pod):
        seconds_until_ready(runner, port, name, pod)
        logs = runner.podman("logs", name)
    assert f"serving runs:/{newest}/model" in logs.stdout.splitlines()


def test_a_model_uri_that_does_not_exist_stops_the_server_with_a_readable_reason(
    played, engines, job, mlflow_server, tmp_path_factory
):
    missing = "runs:/0123456789abcdef0123456789abcdef/model"
    with serving(engines, job, mlflow_server, tmp_path_factory, missing) as (runner, port, name, _):
        code = runner.podman("wait", name).stdout.strip()
        logs = runner.podman("logs", name)
    said = (logs.stdout + logs.stderr).strip().splitlines()
    # MLflow's own error, last: "not found", or "Permission denied" from a server with users (no one may read
    # a run that does not exist). Deploy shows these last words (terminationMessagePolicy FallbackToLogsOnError).
    assert code != "0" and f"serving {missing}" in said, said[:5]
    assert "MlflowException" in said[-1] and ("not found" in said[-1] or "Permission denied" in said[-1]), said[-1]
