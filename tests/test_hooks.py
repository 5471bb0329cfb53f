"""Bad answers are refused before anything is written, with a message that says how to fix them.
The rules are a function of the answers (confiance_job.answers.problems), tested here without
baking; two bakes check that the hook applies them and leaves nothing behind."""

import os
import sys
from pathlib import Path

import pytest
from confiance_job.answers import problems
from cookiecutter.exceptions import FailedHookException
from support import ROOT
from support.commands import run
from support.template import answers_with_defaults, bake

INVALID_ANSWERS = [
    # (answers, field named in the message, words of the rule)
    ({"project_slug": "My_Job"}, "project_slug", "lowercase letters, digits and '-'"),
    ({"project_slug": "9lives"}, "project_slug", "starting with a letter"),
    ({"project_slug": "a" * 41}, "project_slug", "at most 40 characters"),
    ({"project_slug": "job-"}, "project_slug", "lowercase letters"),
    ({"version": "v0.1.0"}, "version", "without the leading v"),
    ({"version": "1.0"}, "version", "X.Y.Z"),
    ({"python_version": "python3"}, "python_version", "MAJOR.MINOR"),
    ({"steps": "prepare,Train"}, "steps", "'Train': lowercase letters"),
    ({"steps": "train,train"}, "steps", "repeated: train"),
    ({"steps": "prepare,,train"}, "steps", "none empty"),
    ({"steps": "class"}, "steps", "'class': lowercase letters"),
    ({"steps": "main"}, "steps", "a name main.py already uses"),
    ({"steps": "a_very_long_step_name_for_a_pod", "project_slug": "a-rather-long-project-slug"}, "steps", "pod name"),
    ({"steps": "evaluate_all12", "project_slug": "a" * 40}, "steps", "at most 53 characters"),  # 40 + 1 + 14
    ({"schedule": "every day"}, "schedule", "5-field cron (got 2 fields)"),
    ({"schedule": "61 * * * *"}, "schedule", "the minute field '61' must be within 0-59"),
    ({"schedule": "0 6 * * MONDAY"}, "schedule", "the day of week field"),
    ({"schedule": "*/0 * * * *"}, "schedule", "the minute field"),
    ({"docker_registry": "https://repo.irtsysx.fr:5086"}, "docker_registry", "without http://"),
    ({"docker_registry": "repo.irtsysx.fr:5086/confiance"}, "docker_registry", "host[:port]"),
    ({"docker_repository": "Confiance"}, "docker_repository", "lowercase repository path"),
    ({"pypi_index_url": "repo.irtsysx.fr/simple"}, "pypi_index_url", "an http(s) URL"),
    ({"namespace": "Confiance_NS"}, "namespace", "Kubernetes namespace"),
    ({"image_pull_secret": "secret nexus"}, "image_pull_secret", "Kubernetes secret name"),
    ({"dags_repo_url": "git@git.irt-systemx.fr:infra/airflow-dags.git"}, "dags_repo_url", "https://"),
    ({"dags_folder": "../elsewhere"}, "dags_folder", "inside the dags repository"),
    ({"ci_templates_project": "gitlab-ci-pipelines"}, "ci_templates_project", "group/.../project"),
    ({"use_nfs": True, "nfs_mount_path": "/app"}, "nfs_mount_path", "a folder of its own"),
    ({"use_nfs": True, "nfs_path": "nfsdata"}, "nfs_path", "an absolute path"),
    ({"use_gpu": True, "gpu_count": "0"}, "gpu_count", "at least 1"),
    ({"use_gpu": True, "gpu_instance_type": "t2 180"}, "gpu_instance_type", "instance type"),
    ({"memory_request": "8 GB"}, "memory_request", "a Kubernetes quantity"),
    ({"cpu_limit": "two"}, "cpu_limit", "a Kubernetes quantity"),
    ({"memory_request": "8Gi", "memory_limit": "4Gi"}, "memory_limit", "at least memory_request (8Gi)"),
    ({"author_email": "jane"}, "author_email", "an email address"),
    ({"project_name": "!!!"}, "project_name", "a name with letters or digits"),
    ({"use_gpu": True, "steps": "prepare,train", "gpu_steps": "training"}, "gpu_steps", "one or more of the steps"),
    ({"use_gpu": True, "gpu_steps": ""}, "gpu_steps", "one or more of the steps (run)"),
    ({"steps": "prepare,train", "step_resources": "training: cpu=4"}, "step_resources", "start with one of the steps"),
    ({"step_resources": "run: ram=4Gi"}, "step_resources", "'ram=4Gi' is not cpu=..., memory=... or gpus=..."),
    ({"step_resources": "run: memory=16Gi/8Gi"}, "step_resources", "run: memory request 16Gi is above its limit 8Gi"),
    ({"step_resources": "run: cpu=lots"}, "step_resources", "cpu request 'lots' is not a Kubernetes quantity"),
    ({"step_resources": "run: memory=8 GB"}, "step_resources", "run: 'GB': no space inside a value (8Gi, not 8 GB)"),
    ({"use_gpu": True, "step_resources": "run: gpus=two"}, "step_resources", "gpus=two is not a whole number"),
    ({"step_resources": "run: gpus=1"}, "step_resources", "gpus=... only with use_gpu on"),
    ({"env_vars": "DATASET"}, "env_vars", "'DATASET' is not NAME=value"),
    ({"env_vars": "1ST=x"}, "env_vars", "'1ST=x' is not NAME=value"),
    ({"env_vars": "RUN_DIR=/tmp"}, "env_vars", "RUN_DIR is set by the DAG for each run"),
    ({"secrets": "mlflow-credentials,S3 Keys"}, "secrets", "'S3 Keys': names of Kubernetes Secrets"),
    ({"mlflow_tracking_uri": "mlflow.example.org"}, "mlflow_tracking_uri", "the tracking server's http(s) URL"),
    ({"mlflow_tracking_uri": "https://me:pw@mlflow.example.org"}, "mlflow_tracking_uri", "without credentials"),
    ({"notify": "jane.doe"}, "notify", "'jane.doe' is not an email address"),
    ({"notify": "slack"}, "notify", "'none', email addresses separated by commas, or 'webhook'"),
    ({"steps": "prepare,train", "sweep_steps": "fit"}, "sweep_steps", "some of the steps (prepare, train)"),
    ({"sweep_steps": "run", "sweep_at_once": "0"}, "sweep_at_once", "a whole number from 1 to 1024"),
    ({"sweep_steps": "run", "sweep_at_once": "four"}, "sweep_at_once", "a whole number from 1 to 1024"),
    ({"env_vars": "SWEEP_DIR=/tmp"}, "env_vars", "SWEEP_DIR is set by the DAG for each run"),
    ({"serving": "mlflow", "mlflow_tracking_uri": ""}, "serving", "answer mlflow_tracking_uri too"),
    (
        {"serving": "mlflow", "mlflow_tracking_uri": "https://m.org", "serving_host": "https://x.org"},
        "serving_host",
        "a host name",
    ),  # fmt: skip
    (
        {"serving": "mlflow", "mlflow_tracking_uri": "https://m.org", "ingress_class": "Nginx Public"},
        "ingress_class",
        "ingress class",
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    "answers, field, rule",
    INVALID_ANSWERS,
    ids=[f"{field}={answers[field]!r}"[:50] for answers, field, _ in INVALID_ANSWERS],
)
def test_an_invalid_answer_is_refused_with_a_clear_message(answers, field, rule):
    message = "\n".join(map(str, problems(answers_with_defaults(answers))))
    assert f"- {field} = {answers[field]!r}" in message
    assert rule in message
    assert "example:" in message


def test_the_hook_stops_the_bake_with_the_problems_and_leaves_nothing(tmp_path, capfd):
    with pytest.raises(FailedHookException):
        bake(tmp_path, version="v0.1.0", namespace="NS")
    message = capfd.readouterr().err
    assert message.startswith(
        "confiance-job: some answers cannot work, nothing was generated:\n\n  - version = 'v0.1.0'"
    )
    assert "- namespace = 'NS'" in message and message.endswith("\n\nRun cookiecutter again with corrected answers.\n")
    assert list(tmp_path.iterdir()) == []  # nothing left behind


@pytest.mark.parametrize(
    "url", ["https://mattermost.example.org/hooks/xk3yq8", "hooks.slack.com/services/T0/B0/xk3yq8"]
)
def test_a_webhook_url_is_refused_without_being_echoed_or_kept(tmp_path, url):
    home = tmp_path / "home"  # where cookiecutter keeps its replay of the answers
    command = [
        Path(sys.executable).parent / "cookiecutter",
        "--no-input",
        "-o",
        tmp_path / "out",
        ROOT,
        f"notify={url}",
    ]
    refused = run(command, env={**os.environ, "HOME": str(home)}, check=False)
    assert refused.returncode != 0
    assert "- notify = <a URL>\n      expected: 'webhook': a webhook URL holds its secret key" in refused.stderr
    assert "xk3yq8" not in refused.stdout + refused.stderr  # the key is a password: never printed
    (replay,) = (home / ".cookiecutter_replay").glob("*.json")
    assert "xk3yq8" not in replay.read_text() and '"<a webhook URL, removed>"' in replay.read_text()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_name_that_makes_no_valid_slug_is_explained_in_terms_of_the_name():
    message = "\n".join(map(str, problems(answers_with_defaults({"project_name": "9 Lives"}))))
    assert "- project_slug = '9-lives'" in message
    assert "it was made from project_name '9 Lives': start the name with a letter, or answer project_slug" in message


def test_every_problem_is_reported_at_once():
    found = problems(answers_with_defaults({"version": "1", "namespace": "NS", "cpu_request": "lots"}))
    assert [problem.field for problem in found] == ["version", "namespace", "cpu_request"]


@pytest.mark.parametrize(
    "answers",
    [
        {"schedule": "@daily"},
        {"schedule": "*/15 9-17 * * MON-FRI"},
        {"schedule": "0 0 1,15 jan-jun 0"},
        {"steps": " prepare , train "},
        {"dags_folder": "jobs/data-science"},
        {"docker_registry": "localhost"},
        {"cpu_request": "500m", "cpu_limit": "1", "memory_request": "512Mi", "memory_limit": "1.5Gi"},
        {"use_nfs": False, "nfs_mount_path": "/app"},  # NFS answers do not matter when NFS is off
        {"use_gpu": False, "gpu_steps": "nonsense"},  # nor GPU answers when GPUs are off
        {"steps": "a,b", "step_resources": " a: cpu=500m/1 memory=1Gi ; b: memory=2Gi/8Gi "},
        {"env_vars": "DATASET=/nfsdata/x, OPTS=--a=1 --b", "secrets": "mlflow-credentials, s3.keys"},
        {"notify": " jane.doe@irt-systemx.fr ; team-ml@irt-systemx.fr "},
        {"notify": "Webhook"},
        {"notify": ""},
    ],
    ids=[
        "preset",
        "cron-ranges",
        "cron-names",
        "spaces-in-steps",
        "dags-subfolder",
        "registry-no-port",
        "small",
        "nfs-off",
        "gpu-off",
        "step-resources",
        "env-and-secrets",
        "notify-emails-semicolons",
        "notify-webhook-capital",
        "notify-empty",
    ],
)
def test_unusual_but_valid_answers_are_accepted(answers):
    assert problems(answers_with_defaults(answers)) == []
