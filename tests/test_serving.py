"""The serving option (the guide's pipeline 2), on both Airflow lines: the serving DAG's own tasks,
run by the provider's operator and hooks against a Kubernetes API on loopback
(tests/support/kube_api.py): deploy, deploy another model, stop; a deploy whose pods never answer;
the RBAC the platform applies; a release that syncs both DAGs. The served model itself answers
in tests/test_mlflow_story.py (podman, a real MLflow server)."""

import json
import os
import subprocess

import pytest
import yaml
from confiance_job.rules import KUBERNETES_VERSION
from support import ROOT
from support.commands import run
from support.gitlab import FakeGitLab, git
from support.guide_jobs import GUIDE_JOBS
from support.template import bake

HELPER = ROOT / "tests" / "helpers" / "serve_on_fake_cluster.py"
RBAC = ROOT / "docs" / "platform" / "serving-rbac.yaml"
SLUG = "air-liquide-timeseries"
NAME = f"{SLUG}-serve"


@pytest.fixture(scope="module")
def serving_repo(tmp_path_factory):
    answers = {**GUIDE_JOBS["air-liquide"], "mlflow_tracking_uri": "https://mlflow.example.org", "serving": "mlflow"}
    return bake(tmp_path_factory.mktemp("serving"), **answers)


@pytest.fixture(scope="module")
def on_cluster(airflow_python, serving_repo):
    """What the cluster held after each action of the serving DAG's tasks (see the helper)."""
    return json.loads(run([airflow_python, HELPER, serving_repo / "dags" / f"{NAME}.py"]).stdout)


def test_serving_none_bakes_neither_the_serving_dag_nor_its_tests(tmp_path, serving_repo):
    repo = bake(tmp_path)
    assert sorted(path.name for path in (repo / "dags").iterdir()) == [f"{repo.name}.py"]
    assert not (repo / "tests" / "test_serving.py").exists()
    assert (serving_repo / "dags" / f"{NAME}.py").is_file() and (serving_repo / "tests" / "test_serving.py").is_file()


def test_the_form_chooses_deploy_or_stop(on_cluster):
    assert on_cluster["choose"] == {"deploy": "deploy", "stop": "stop"}


def test_a_deploy_creates_the_deployment_service_and_ingress(on_cluster):
    ours = [item for item in on_cluster["after_first_deploy"] if item[1] == NAME]
    assert ours == [
        ["deployments", NAME, "runs:/aaaa/model", 1],
        ["ingresses", NAME, None, 1],
        ["services", NAME, None, 1],
    ]


def test_deploying_again_replaces_the_model_in_the_one_deployment(on_cluster):
    ours = [item for item in on_cluster["after_second_deploy"] if item[1] == NAME]
    assert ours[0] == ["deployments", NAME, "models:/demand/2", 2]  # the same object, its next generation
    assert len(ours) == 3
    assert on_cluster["writes"] == ["DELETE", "PATCH"]  # applied (PATCH), never created (POST): no AlreadyExists


def test_stop_deletes_what_deploy_made_and_nothing_else(on_cluster):
    assert on_cluster["deleted"] == [f"Ingress {NAME}", f"Service {NAME}", f"Deployment {NAME}"]
    assert on_cluster["after_stop"] == [["deployments", "other-job-serve", None, None]]


def test_a_deploy_whose_pods_never_answer_fails_with_their_reason(on_cluster):
    assert on_cluster["crash_reason"] == (
        "the model is not served after 0.3 s: the server exits (code 1): "
        "mlflow.exceptions.MlflowException: Run 'nope' not found"
    )
    assert on_cluster["image_reason"].endswith("image not found (ImagePullBackOff): back-off")


def test_the_rbac_the_platform_applies_is_valid_and_grants_every_call_serving_makes(airflow_python, on_cluster):
    manifests = list(yaml.safe_load_all(RBAC.read_text()))
    validate = "import json, sys, kubernetes_validate\nfor m in json.loads(sys.argv[2]):\n"
    validate += "    kubernetes_validate.validate(m, sys.argv[1], strict=True)"
    run([airflow_python, "-c", validate, KUBERNETES_VERSION, json.dumps(manifests)])
    granted = {
        f"{verb} {resource}"
        for rule in manifests[0]["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = set(on_cluster["permissions"]) | {f"create {kind}" for kind in ("deployments", "services", "ingresses")}
    assert needed - granted == set()  # server-side apply of a new object needs create too
    assert "get deployments/status" in needed and "list pods" in needed


def test_the_job_repos_own_tests_pass_with_serving(airflow_python, serving_repo):
    tested = subprocess.run(
        [airflow_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_serving.py", "tests/test_dag.py"],
        cwd=serving_repo,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout[-3000:]


def test_a_release_syncs_both_dags_stamped_and_retire_removes_both(airflow_python, serving_repo, tmp_path):
    gitlab = FakeGitLab(tmp_path)
    gitlab.create_project("infra/airflow-dags", {"README.md": "DAGs\n"})
    dags_repo = gitlab.bare_repo("infra/airflow-dags")
    cli = os.path.join(os.path.dirname(airflow_python), "confiance-job")
    env = {
        **os.environ,
        "PROJECT_NAME": SLUG,
        "DAG_FILE": f"dags/{SLUG}.py",
        "AIRFLOW_DAGS_REPO": str(dags_repo),
        "AIRFLOW_DAGS_BRANCH": "master",
        "AIRFLOW_DAGS_TOKEN": "t",
        "CI_COMMIT_TAG": "v0.3.0",
        "CI_PROJECT_PATH": f"data/{SLUG}",
    }
    synced = run([cli, "sync-dag"], cwd=serving_repo, env=env)
    assert f"Synced {SLUG}.py, {NAME}.py at v0.3.0" in synced.stdout
    files = git("ls-tree", "--name-only", "master", cwd=dags_repo).split()
    assert files == ["README.md", f"{NAME}.py", f"{SLUG}.py"]
    serving = git("show", f"master:{NAME}.py", cwd=dags_repo)
    assert 'DEFAULT_IMAGE_TAG = "0.3.0"' in serving and serving.startswith(
        f"# Do not edit here; generated by data/{SLUG}"
    )
    retired = run([cli, "retire-dag"], cwd=serving_repo, env=env)
    assert f"Retired {SLUG}.py, {NAME}.py" in retired.stdout
    assert git("ls-tree", "--name-only", "master", cwd=dags_repo).split() == ["README.md"]
