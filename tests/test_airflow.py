"""The generated DAG works on both Airflow lines: it imports, chains its steps,
and the pods it builds are valid Kubernetes pods with what the answers asked for."""

import json
import re
from pathlib import Path

import pytest
from conftest import COMBINATIONS, bake, run

CHECK_DAGS = Path(__file__).parent / "helpers" / "check_dags.py"

# A few combinations whose generated test suites run in full (together they use every option value).
SUITE_COMBINATIONS = ["1step-nfs-cpu-nocerts-manual", "3steps-nonfs-gpu-certs-cron", "3steps-nfs-gpu-nocerts-manual"]


@pytest.fixture(scope="module")
def dag_facts(airflow_python, baked):
    """Facts about every baked DAG, gathered in one process of the given Airflow line."""
    output = run([airflow_python, CHECK_DAGS, *baked.values()], timeout=900).stdout
    facts = json.loads(output)
    return {combo: facts[str(repo)] for combo, repo in baked.items()}


@pytest.mark.parametrize("combo", COMBINATIONS)
def test_the_dag_imports_and_builds_valid_pods(dag_facts, combo):
    answers, facts = COMBINATIONS[combo], dag_facts[combo]
    assert facts["import_errors"] == {}
    assert facts["dag_file_warnings"] == []
    steps = answers["steps"].split(",")
    assert facts["tasks"] == steps
    assert facts["upstream"] == {step: steps[i - 1 : i] for i, step in enumerate(steps)}
    assert facts["schedule"] == ("None" if answers["schedule"] == "none" else answers["schedule"])
    assert facts["tags"] == ["confiance-job", "my-job"]
    assert facts["invalid_pods"] == []


@pytest.mark.parametrize("combo", COMBINATIONS)
def test_the_pods_carry_what_the_answers_asked(dag_facts, combo):
    answers = COMBINATIONS[combo]
    for conf_name, pods in dag_facts[combo]["pods"].items():
        for step, pod in pods.items():
            spec = pod["spec"]
            (container,) = spec["containers"]
            tag = "0.1.0" if conf_name == "defaults" else "1.2.3-rc.1"
            assert container["image"] == f"repo.irtsysx.fr:5086/confiance/my-job:{tag}"
            assert container["imagePullPolicy"] == "Always"
            assert spec["imagePullSecrets"] == [{"name": "secretnexus"}]
            assert pod["metadata"]["namespace"] == "confiance"
            assert re.fullmatch(rf"my-job-{step}-[a-z0-9]{{8}}", pod["metadata"]["name"])
            assert container["command"] == ["bash", "-c"] and container["args"] == [f"python main.py {step}"]
            env = {var["name"]: var["value"] for var in container["env"]}
            assert env["DATA_DIR"] == ("/nfsdata/my-job" if answers["use_nfs"] else "/data")
            assert env["RUN_DIR"] == env["DATA_DIR"] + "/runs/manual__render"
            assert (env["RUN_ID"], env["IMAGE_TAG"], env["TRY_NUMBER"]) == ("manual__render", tag, "1")
            assert ("EPOCHS" in env) == (conf_name == "full")
            assert not container.get("envFrom")  # no secrets asked
            gpu = answers["use_gpu"]  # every step, by default
            mounts = [(m["name"], m["mountPath"]) for m in container.get("volumeMounts", [])]
            volumes = spec.get("volumes", [])
            nfs_volume = {"name": "nfs-data", "nfs": {"server": "152.228.211.245", "path": "/nfsdata"}}
            shm_volume = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}}
            assert mounts == [("nfs-data", "/nfsdata")] * answers["use_nfs"] + [("dshm", "/dev/shm")] * gpu
            assert volumes == [nfs_volume] * answers["use_nfs"] + [shm_volume] * gpu
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            if conf_name == "defaults":
                assert (requests, {k: v for k, v in limits.items() if k != "nvidia.com/gpu"}) == (
                    {"cpu": "1", "memory": "2Gi"},
                    {"cpu": "2", "memory": "4Gi"},
                )
            else:
                assert requests == {"cpu": "500m", "memory": "3Gi"}
            assert limits.get("nvidia.com/gpu") == ("1" if gpu else None)
            affinity = json.dumps(spec.get("affinity") or {})
            assert ('"t2-180"' in affinity) == gpu
            toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            assert (spec.get("tolerations") or []) == ([toleration] if gpu else [])


@pytest.mark.parametrize("combo", SUITE_COMBINATIONS)
def test_the_generated_test_suite_passes(airflow_python, baked, combo):
    result = run([airflow_python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=baked[combo], timeout=900)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed in ", summary), summary  # nothing skipped, nothing failed


def test_a_broken_dag_fails_the_generated_tests(airflow_python, tmp_path):
    repo = bake(tmp_path)
    dag = repo / "dags" / "my-job.py"
    dag.write_text(dag.read_text().replace("image_pull_policy=", "image_pull_polcy="))
    result = run(
        [airflow_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_dag.py"], cwd=repo, check=False
    )
    assert result.returncode == 1
    assert "image_pull_polcy" in result.stdout


def test_the_render_command_prints_the_pods_or_the_reason_airflow_would_refuse(airflow_python, baked):
    repo = baked["3steps-nfs-cpu-nocerts-manual"]
    command = [airflow_python, "scripts/render_pod.py"]
    pods = json.loads(
        run([*command, '{"image_tag": "0.2.0", "train_command": "python main.py train --fast"}'], cwd=repo).stdout
    )
    assert pods["kind"] == "List" and [pod["metadata"]["labels"]["task_id"] for pod in pods["items"]] == [
        "prepare",
        "train",
        "evaluate",
    ]
    assert {pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1] for pod in pods["items"]} == {"0.2.0"}
    assert pods["items"][1]["spec"]["containers"][0]["args"] == ["python main.py train --fast"]
    one = json.loads(run([*command, "{}", "--step", "evaluate"], cwd=repo).stdout)
    assert one["kind"] == "Pod" and one["metadata"]["labels"]["task_id"] == "evaluate"
    refused = run([*command, '{"memory": "8 GB"}'], cwd=repo, check=False)
    assert refused.returncode == 1 and "Airflow would reject this conf" in refused.stderr and "memory" in refused.stderr
