# The platform guide's generic DAG ("Template Run One Job"), as users copy it today.
# Adapted to import on Airflow 2.10 (see bench/README.md): the operator's module
# moved from operators.kubernetes_pod to operators.pod in the provider.
from kubernetes.client import models as k8s
from airflow import DAG
from airflow.kubernetes.secret import Secret
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.utils.dates import days_ago
from datetime import timedelta

default_args = {
    'owner': 'USER.NAME',
    'depend_on_past': False,
    'retries': 1,
    'retry_delay': timedelta(minutes=2),
    'start_date': days_ago(1)
}

# No scheduling define in this example
with DAG(
    dag_id='template-run-one-job',
    default_args=default_args,
    schedule_interval=None,
    tags=['job','template'],
) as dag:
    step_run_job = KubernetesPodOperator(
        namespace='confiance',
        # Docker image to pull
        image="repo.irtsysx.fr:5086/{{ dag_run.conf['repo_name'] }}/{{ dag_run.conf['image_name'] }}:{{ dag_run.conf['image_tag'] }}",
        image_pull_secrets=[k8s.V1LocalObjectReference('secretnexus')],   # Secret to pull Nexus
        image_pull_policy='Always',
        # Pod name
        name="template-run-one-job",
        # Delete pod at the end of the task
        is_delete_operator_pod=True, ## Command to delete pod once cmds executed
        in_cluster=True,
        task_id="run-job",
        get_logs=True,
    )
