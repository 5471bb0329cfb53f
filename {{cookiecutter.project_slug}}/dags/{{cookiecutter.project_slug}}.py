{%- set steps = cookiecutter.steps.split(',') | map('trim') | list -%}
{%- set schedule = cookiecutter.schedule.strip() -%}
"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}

Each step runs `python main.py <step>` in its own Kubernetes pod, from the image
CI pushed to Nexus. Trigger it in the Airflow UI ("Trigger DAG": a form with the
image tag, command, env and resources) or with `make trigger` in the job repo.
CI copies this file to the airflow-dags repository on every release tag.
"""

from datetime import datetime, timedelta, timezone

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

try:  # Airflow 3
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param

DAG_ID = "{{ cookiecutter.project_slug }}"
IMAGE = "{{ cookiecutter.__image }}"
DEFAULT_IMAGE_TAG = "{{ cookiecutter.version }}"  # CI sets this to the version it just pushed

# The steps, in the order they run, and the command each one runs by default.
STEPS = {
{%- for step in steps %}
    "{{ step }}": "python main.py {{ step }}",
{%- endfor %}
}

# Environment variables every step sees. The Trigger form can add more.
ENV = {
    "JOB_NAME": DAG_ID,
    "DATA_DIR": "{{ cookiecutter.nfs_mount_path ~ '/' ~ cookiecutter.project_slug if cookiecutter.use_nfs else '/data' }}",
}

# What each pod reserves (requests) and may use at most (limits).
# The Trigger form's cpu/memory fields set both for one run.
CPU = {"request": "{{ cookiecutter.cpu_request }}", "limit": "{{ cookiecutter.cpu_limit }}"}
MEMORY = {"request": "{{ cookiecutter.memory_request }}", "limit": "{{ cookiecutter.memory_limit }}"}
{%- if cookiecutter.use_gpu %}
GPU_COUNT = {{ cookiecutter.gpu_count }}
# Run only on the GPU nodes of this instance type.
GPU_AFFINITY = k8s.V1Affinity(
    node_affinity=k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
            node_selector_terms=[
                k8s.V1NodeSelectorTerm(
                    match_expressions=[
                        k8s.V1NodeSelectorRequirement(
                            key="node.kubernetes.io/instance-type",
                            operator="In",
                            values=["{{ cookiecutter.gpu_instance_type }}"],
                        ),
                    ],
                ),
            ],
        ),
    ),
)
{%- endif %}
{%- if cookiecutter.use_nfs %}

# The NFS share, mounted in every pod at {{ cookiecutter.nfs_mount_path }}.
NFS_VOLUME = k8s.V1Volume(
    name="nfs-data",
    nfs=k8s.V1NFSVolumeSource(server="{{ cookiecutter.nfs_server }}", path="{{ cookiecutter.nfs_path }}"),
)
NFS_MOUNT = k8s.V1VolumeMount(name="nfs-data", mount_path="{{ cookiecutter.nfs_mount_path }}")
{%- endif %}


def command_field(step):
    """The form field that replaces a step's command."""
    return "command" if len(STEPS) == 1 else f"{step}_command"


def from_form(field, default):
    """A template Airflow fills in when the task runs: the form's value, or the default if left empty."""
    return "{% raw %}{{ params.%s or %r }}{% endraw %}" % (field, default)


# The fields of the Trigger form. Every optional field may be left empty.
PARAMS = {
    "image_tag": Param(
        DEFAULT_IMAGE_TAG,
        type="string",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        title="Image tag",
        description=f"Version of {IMAGE} to run. A git tag v0.2.0 publishes 0.2.0.",
    ),
    **{
        command_field(step): Param(
            None,
            type=["null", "string"],
            title="Command" if len(STEPS) == 1 else f"Command of step {step}",
            description=f"Shell command run in the pod instead of: {command}. Empty: keep it.",
        )
        for step, command in STEPS.items()
    },
    "env": Param(
        None,
        type=["null", "object"],
        additionalProperties={"type": "string"},
        propertyNames={"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
        title="Extra environment variables",
        description='A JSON object of strings, added to every step, e.g. {"EPOCHS": "3"}. Empty: none.',
    ),
    "cpu": Param(
        None,
        type=["null", "string"],
        pattern=r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)m?$",
        title="CPU",
        description=f"CPUs for each pod of this run, e.g. 4 or 500m. Empty: {CPU['request']}, up to {CPU['limit']}.",
    ),
    "memory": Param(
        None,
        type=["null", "string"],
        pattern=r"^[0-9]+(\.[0-9]+)?(k|M|G|T|Ki|Mi|Gi|Ti)?$",
        title="Memory",
        description=f"Memory for each pod of this run, e.g. 16Gi. Empty: {MEMORY['request']}, up to {MEMORY['limit']}.",
    ),
}


class JobPodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator that also passes the form's extra env to the pod."""

    def render_template_fields(self, context, jinja_env=None):
        super().render_template_fields(context, jinja_env)
        # By now Airflow 3's provider has turned ENV into a list of V1EnvVar; Airflow 2's keeps the dict.
        env = self.env_vars if isinstance(self.env_vars, dict) else {var.name: var.value for var in self.env_vars}
        self.env_vars = {**env, **(context["params"].get("env") or {})}


with DAG(
    dag_id=DAG_ID,
    description={{ cookiecutter.description | tojson }},
    doc_md=__doc__,
    schedule={{ 'None' if schedule.lower() == 'none' else '"' ~ schedule ~ '"' }},
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    is_paused_upon_creation=False,
    params=PARAMS,
    tags=["confiance-job", DAG_ID],
    default_args={
        "owner": {{ cookiecutter.author_name | tojson }},
        "retries": 1,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(hours=24),
    },
) as dag:
    previous = None
    for step, default_command in STEPS.items():
        task = JobPodOperator(
            task_id=step,
            name=f"{DAG_ID}-{step}".replace("_", "-"),  # pod name (a random suffix is added)
            namespace="{{ cookiecutter.namespace }}",
            image=IMAGE + ":{% raw %}{{ params.image_tag }}{% endraw %}",
            image_pull_policy="Always",
            image_pull_secrets=[k8s.V1LocalObjectReference(name="{{ cookiecutter.image_pull_secret }}")],
            cmds=["bash", "-c"],
            arguments=[from_form(command_field(step), default_command)],
            env_vars=ENV,
            container_resources=k8s.V1ResourceRequirements(
                requests={"cpu": from_form("cpu", CPU["request"]), "memory": from_form("memory", MEMORY["request"])},
                limits={
                    "cpu": from_form("cpu", CPU["limit"]),
                    "memory": from_form("memory", MEMORY["limit"]),
{%- if cookiecutter.use_gpu %}
                    "nvidia.com/gpu": str(GPU_COUNT),
{%- endif %}
                },
            ),
{%- if cookiecutter.use_gpu %}
            affinity=GPU_AFFINITY,
{%- endif %}
{%- if cookiecutter.use_nfs %}
            volumes=[NFS_VOLUME],
            volume_mounts=[NFS_MOUNT],
{%- endif %}
            in_cluster=True,
            get_logs=True,
            on_finish_action="delete_pod",
            startup_timeout_seconds=600,  # time to pull a large image and to wait for free resources
        )
        if previous:
            previous >> task
        previous = task
