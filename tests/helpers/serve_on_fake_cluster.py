"""Run inside an Airflow venv: the serving DAG's own tasks against a Kubernetes API on loopback.

    python serve_on_fake_cluster.py SERVE_DAG_FILE  ->  JSON of what the cluster holds after each action

Deploy (the provider's create operator, applying), deploy again with another model, then stop; and a
deploy whose pods never answer, whose wait fails with the pods' reason. Each task is rendered as when its
step starts (the platform's package, as `make render` does) and run by its operator's own code.
"""

import contextlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.kube_api import FakeCluster, object_path  # noqa: E402

OTHER_LABELS = {"app.kubernetes.io/name": "other-job-serve", "app.kubernetes.io/managed-by": "confiance-job"}
OTHER = {  # another job's server in the same namespace: stop must leave it
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "other-job-serve", "namespace": "confiance", "labels": OTHER_LABELS},
    "spec": {"replicas": 1},
}


def held(cluster):
    """[(plural, name, model URI of a Deployment, generation)] the cluster holds."""
    return [
        [
            plural,
            name,
            obj.get("spec", {})
            .get("template", {})
            .get("metadata", {})
            .get("annotations", {})
            .get("confiance-job/model-uri"),
            obj["metadata"].get("generation"),
        ]
        for (plural, _, name), obj in sorted(cluster.objects.items())
    ]


def permission(method, path):
    """The RBAC (verb, resource) a call needs; None for discovery, which every account may read."""
    where = object_path(path)
    if where is None:
        return None
    plural, _, name, sub = where
    verb = {"GET": "get" if name else "list", "PATCH": "patch", "DELETE": "delete", "POST": "create"}[method]
    return f"{verb} {plural}" + (f"/{sub}" if sub else "")


def deploy(dag, conf, run_id):
    from confiance_job.render import rendered, validate_conf

    task = dag.get_task("deploy")
    task, context = rendered(task, validate_conf(dag, conf), conf, run_id)
    task.config_file = None  # the cluster of Airflow's connection, as on the platform
    task.execute(context)


def main():
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    from confiance_job.dags import load_dag

    dag_file, report = sys.argv[1], {}
    with contextlib.redirect_stdout(sys.stderr), FakeCluster() as cluster:
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": cluster.kubeconfig}}
        os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(connection)
        dag = load_dag(dag_file)
        functions = dag.get_task("wait_until_ready").python_callable.__globals__  # the DAG file's module
        choose = dag.get_task("choose").python_callable
        report["choose"] = {action: choose(params={"action": action}) for action in ("deploy", "stop")}
        cluster.put("deployments", OTHER)
        deploy(dag, {"model_uri": "runs:/aaaa/model"}, "manual__first")
        functions["wait_until_served"](timeout=5, every=0.1)
        report["after_first_deploy"] = held(cluster)
        deploy(dag, {"model_uri": "models:/demand/2", "replicas": 2}, "manual__second")
        functions["wait_until_served"](timeout=5, every=0.1)
        report["after_second_deploy"] = held(cluster)
        report["deleted"] = functions["delete_serving"]()
        report["after_stop"] = held(cluster)
        report["writes"] = sorted({method for method, _, _ in cluster.calls if method != "GET"})
        calls = list(cluster.calls)
    for name, stuck in {
        "crash": FakeCluster(rollout="stuck", crash_message="mlflow.exceptions.MlflowException: Run 'nope' not found"),
        "image": FakeCluster(rollout="stuck", waiting_reason="ImagePullBackOff"),
    }.items():
        with contextlib.redirect_stdout(sys.stderr), stuck as cluster:
            connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": cluster.kubeconfig}}
            os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"] = json.dumps(connection)
            deploy(dag, {"model_uri": "runs:/nope/model"}, f"manual__{name}")
            try:
                functions["wait_until_served"](timeout=0.3, every=0.1)
                report[f"{name}_reason"] = None
            except RuntimeError as error:
                report[f"{name}_reason"] = str(error)
            calls += cluster.calls
    report["permissions"] = sorted({permission(method, path) for method, path, _ in calls} - {None})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
