"""The longest names the answers allow still make valid pods, whatever the run id, and each step's pod
is deleted when the step ends, is marked failed or success in the UI, and followed again if its worker dies."""

import json
import re
from pathlib import Path

import pytest
from confiance_job.answers import DNS_SUBDOMAIN  # Kubernetes' rule for object names
from support.commands import run
from support.template import bake

POD_LIMITS = Path(__file__).parent / "helpers" / "pod_limits.py"

SLUG = "air-quality-forecast-for-the-north-coast"  # the longest slug the answers allow (40)
STEPS = ["prepare_data_", "train__models", "evaluate_all1"]  # the longest steps with that slug (40 + 1 + 13 = 54)
RUN_IDS = [
    "manual__2026-12-04T18:39:19.123456+00:00",
    "scheduled__2026-12-04T18:39:19.123456+00:00",
    ("nightly+retrain:2026-12-04T18:39:19.123456+00:00~" * 5)[:250],  # a custom run id as long as Airflow allows
    "r" * 250,
]
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.fixture(scope="module")
def longest_names(tmp_path_factory):
    assert len(SLUG) == 40 and all(len(step) == 13 for step in STEPS)
    return bake(tmp_path_factory.mktemp("longest"), project_slug=SLUG, steps=",".join(STEPS))


@pytest.fixture(scope="module")
def facts(airflow_python, longest_names):
    dag_file = longest_names / "dags" / f"{SLUG}.py"
    return json.loads(run([airflow_python, POD_LIMITS, dag_file, json.dumps(RUN_IDS)], timeout=600).stdout)


def test_the_longest_names_and_run_ids_give_valid_pod_names_and_labels(facts):
    assert sorted(facts["pods"]) == sorted(RUN_IDS)  # and kubernetes-validate --strict accepted every pod
    for run_id, pods in facts["pods"].items():
        assert list(pods) == STEPS
        for step, pod in pods.items():
            name, labels = pod["metadata"]["name"], pod["metadata"]["labels"]
            assert len(name) <= 63 and DNS_SUBDOMAIN.match(name), name
            # Nothing cut but a trailing '-': the whole slug and step, then the provider's random suffix.
            assert re.fullmatch(f"{SLUG}-{step.replace('_', '-').rstrip('-')}-[a-z0-9]{{8}}", name), name
            assert {"dag_id", "task_id", "run_id", "try_number"} <= set(labels)
            for key, value in labels.items():
                assert len(value) <= 63 and LABEL_VALUE.match(value), (run_id, key, value)


def test_a_pod_is_deleted_when_its_step_ends_or_is_stopped_and_followed_again_after_a_worker_dies(
    airflow_python, facts
):
    newer_provider = "airflow3" in str(airflow_python)
    assert list(facts["settings"]) == STEPS
    for settings in facts["settings"].values():
        assert settings["on_finish_action"] == "delete_pod"
        assert settings["reattach_on_restart"] == "True"
        if newer_provider:  # it names them: on_kill_action, and durable for reattach_on_restart
            assert settings["on_kill_action"] == "delete_pod"
            assert settings["durable"] == "True"
        else:  # its on_kill always deletes the pod
            assert "on_kill_action" not in settings
    assert facts["warnings"] == []  # no option the provider calls deprecated or without effect
    # The DAG relies on these defaults of both providers: a new provider that changes them fails here.
