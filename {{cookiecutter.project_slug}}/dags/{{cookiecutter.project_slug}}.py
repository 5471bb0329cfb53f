{%- set steps = cookiecutter.steps | items -%}
{%- set schedule = cookiecutter.schedule.strip() -%}
{%- set resources = (cookiecutter | step_resources).table -%}
{%- set notify = cookiecutter | notify -%}
{%- set sweep_steps = cookiecutter.sweep_steps | items -%}
"""{{ cookiecutter.project_name | docstring }}: {{ cookiecutter.description | docstring }}

Each step runs `python main.py <step>` in its own Kubernetes pod, from the image
CI pushed to Nexus. Trigger it in the Airflow UI ("Trigger DAG": a form with the
image tag, command, env and resources) or with `make trigger` in the job repo.
CI copies this file to the airflow-dags repository on every release tag.
"""

{% if notify.emails -%}
import html
{% endif -%}
{% if notify.emails or notify.connection -%}
import re
{% endif -%}
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
{%- if notify.connection %}
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
{%- elif notify.emails %}
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
{%- endif %}
from kubernetes.client import models as k8s

try:  # Airflow 3
    from airflow.sdk import DAG, Param{{ ', task' if sweep_steps }}
except ImportError:  # Airflow 2
    from airflow import DAG
{%- if sweep_steps %}
    from airflow.decorators import task
{%- endif %}
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

# What each step's pod gets: CPU and memory as [reserved, maximum] (or one value for both), and GPUs.
# Edit a line to give one step more. The Trigger form's cpu/memory fields
# replace these for every step of one run.
RESOURCES = {
{%- for step, profile in resources.items() %}
    "{{ step }}": {"cpu": {{ profile.cpu | list | tojson }}, "memory": {{ profile.memory | list | tojson }}, "gpus": {{ profile.gpus }}},
{%- endfor %}
}

# Environment variables every step sees. Each run adds RUN_ID, RUN_DIR (a folder
# of its own under DATA_DIR), IMAGE_TAG and TRY_NUMBER; the Trigger form can add more.
DATA_DIR = {{ (cookiecutter | static_env).DATA_DIR | py_str }}
ENV = {
{%- for name, value in (cookiecutter | static_env).items() %}
    "{{ name }}": {{ "DATA_DIR" if name == "DATA_DIR" else value | py_str }},
{%- endfor %}
}

# Kubernetes Secrets whose keys every step gets as environment variables
# (kubectl create secret generic ..., see README). Never put a secret in ENV or the form.
SECRETS = {{ cookiecutter.secrets | items | tojson }}

{% if sweep_steps -%}
# Steps the Trigger form can sweep: given a list of env objects in the step's sweep field, the step
# runs as one pod per object, at most SWEEP_AT_ONCE at a time, each with a folder of its own (SWEEP_DIR).
# The next step starts when every pod has succeeded, and reads their results (README: Sweeps).
SWEEP_STEPS = {{ sweep_steps | tojson }}
SWEEP_AT_ONCE = {{ cookiecutter.sweep_at_once.strip() or sweep_at_once }}

{% endif -%}
# GPU steps run on the GPU nodes, which only GPU pods may use (taint nvidia.com/gpu).
GPU_NODE_TYPE = "{{ cookiecutter.gpu_instance_type }}"
{%- if cookiecutter.use_nfs %}

# The NFS share, mounted in every pod at {{ cookiecutter.nfs_mount_path }}.
NFS_VOLUME = k8s.V1Volume(
    name="nfs-data",
    nfs=k8s.V1NFSVolumeSource(server="{{ cookiecutter.nfs_server }}", path="{{ cookiecutter.nfs_path }}"),
)
NFS_MOUNT = k8s.V1VolumeMount(name="nfs-data", mount_path="{{ cookiecutter.nfs_mount_path }}")
{%- endif %}
{%- if notify.emails or notify.connection %}

{% if notify.emails -%}
# Who hears when a step fails after its last retry: these addresses, by a mail sent through
# Airflow's SMTP connection "smtp_default" (the platform's mail server; no password here).
NOTIFY_EMAILS = {{ notify.emails | tojson }}
{%- else -%}
# Where a message goes when a step fails after its last retry: the Mattermost or Slack channel whose
# webhook URL is kept in this Airflow connection (README: When a run fails). The URL is a password:
# it never goes in this file.
NOTIFY_CONNECTION = "{{ notify.connection }}"
{%- endif %}
{%- endif %}

# ---- Above: the settings you may edit. Below: how Airflow turns them into the form and the pods. ----

# A Kubernetes quantity, as the form's cpu and memory fields take it: 4, 500m, 16Gi.
QUANTITY = r"{{ quantity_pattern }}"
# An image tag: 0.2.0, dev-1a2b3c4. Not v0.2.0: that is the git tag, and no image has it.
IMAGE_TAG_PATTERN = r"{{ image_tag_pattern }}"
{%- if sweep_steps %}
# The most pods one step may have: the platform's [core] max_map_length in Airflow.
SWEEP_MAX = {{ sweep_max }}
# The variables the run and the sweep set, which a sweep's values may not replace.
SET_BY_THE_RUN = {{ sweep_reserved | tojson }}
{%- endif %}


def command_field(step):
    """The form field that replaces a step's command."""
    return "command" if len(STEPS) == 1 else f"{step}_command"


def reserved_and_max(step, kind):
    """A step's (reserved, maximum) cpu or memory, as text: "4" or ["2", "4"] in RESOURCES."""
    value = RESOURCES[step][kind]
    reserved, maximum = value if isinstance(value, (list, tuple)) else (value, value)
    return str(reserved), str(maximum)


def container_resources(step, form):
    """Requests and limits of a step's container; the form's cpu/memory, when given, set both."""
    (cpu, cpu_limit), (memory, memory_limit) = reserved_and_max(step, "cpu"), reserved_and_max(step, "memory")
    cpu, cpu_limit = (form["cpu"], form["cpu"]) if form.get("cpu") else (cpu, cpu_limit)
    memory, memory_limit = (form["memory"], form["memory"]) if form.get("memory") else (memory, memory_limit)
    gpus = {"nvidia.com/gpu": str(RESOURCES[step]["gpus"])} if RESOURCES[step]["gpus"] else {}
    return k8s.V1ResourceRequirements(
        requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu_limit, "memory": memory_limit, **gpus}
    )


def gpu_placement(step):
    """For a GPU step: run on a GPU node, and give PyTorch's DataLoader workers a big /dev/shm
    (the 64 MB default makes them crash). Other steps get none of this."""
    if not RESOURCES[step]["gpus"]:
        return {}
    node_type = k8s.V1NodeSelectorRequirement(
        key="node.kubernetes.io/instance-type", operator="In", values=[GPU_NODE_TYPE]
    )
    shared_memory = k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=reserved_and_max(step, "memory")[1])
    return {
        "affinity": k8s.V1Affinity(
            node_affinity=k8s.V1NodeAffinity(
                required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
                    node_selector_terms=[k8s.V1NodeSelectorTerm(match_expressions=[node_type])]
                )
            )
        ),
        "tolerations": [k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
        "volumes": [k8s.V1Volume(name="dshm", empty_dir=shared_memory)],
        "volume_mounts": [k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")],
    }


def run_folder(run_id):
    """The folder name of a run: its id, every character but letters, digits, _ . - written as %XX
    (manual__2026-01-01T06:00:00+00:00 -> manual__2026-01-01T06%3A00%3A00%2B00%3A00).
    A safe name, and one-to-one: two runs never share a folder."""
    folder = quote(run_id, safe="").replace("~", "%7E")
    return "%2E" + folder[1:] if folder.startswith(".") else folder  # never "." or ".."


def run_env(context):
    """What a run adds to the env: its id, its own folder, the image tag and the try number."""
    run_id = context["run_id"]
    return {
        "RUN_ID": run_id,
        "RUN_DIR": f"{DATA_DIR}/runs/{run_folder(run_id)}",
        "IMAGE_TAG": str(context["params"]["image_tag"]),
        "TRY_NUMBER": str(context["ti"].try_number),
    }
{%- if sweep_steps %}


def sweep_field(step):
    """The form field that sweeps a step."""
    return "sweep" if len(STEPS) == 1 else f"{step}_sweep"


def sweep_copies(step, params=None):
    """The pods of a swept step, one per item of its sweep field in the run's form values (params): the
    item's env, its number, and its name in the UI ("1: LR=0.01"). The field left empty: one pod, as if
    the step were not swept. Airflow runs this as the task <step>_sweep, before the step's pods."""
    items = params.get(sweep_field(step)) or []
    if not items:
        return [{"label": "not swept"}]
    copies = []
    for index, values in enumerate(items):
        label = f"{index}: " + ", ".join(f"{name}={value}" for name, value in values.items())
        copies.append({"index": index, "size": len(items), "env": values, "label": label[:100]})
    return copies


def sweep_env(step, copy, run_dir):
    """A pod's sweep env: its values, its number, the count and its folder in the run's (none unswept)."""
    if "index" not in copy:
        return {}
    folder = f"{run_dir}/{step}-sweep/{copy['index']:04d}"  # 0000, 0001...: in order when listed
    return {**copy["env"], "SWEEP_INDEX": str(copy["index"]), "SWEEP_SIZE": str(copy["size"]), "SWEEP_DIR": folder}
{%- endif %}

{%- if notify.emails or notify.connection %}


# The platform's rules for why a step failed, from the error Airflow raised about its pod.
{{ failure_reasons_code }}


def failure_message(context):
    """What a failure message says: the DAG, the step, the try, why, and links to the run and the step's log."""
    ti, error = context["ti"], str(context.get("exception") or "")
    why = failure_reason(error) or (error.strip().splitlines() or ["unknown, see the log"])[0][:300]
    # Airflow 3: .../runs/<run>/tasks/<step>?try_number=N; Airflow 2: .../grid?dag_run_id=<run>&task_id=<step>&tab=logs
    log_page = ti.log_url
    run_page = log_page.split("/tasks/")[0] if "/tasks/" in log_page else re.sub(r"&(task_id|tab)=[^&]*", "", log_page)
    return [
        f"{DAG_ID}: step {ti.task_id} failed (try {ti.try_number}): {why}",
        f"Run: {run_page}",
        f"Log: {log_page}",
    ]


def tell_failure(context):
    """Airflow calls this when a step fails after its last retry (on_failure_callback)."""
    lines = failure_message(context)
{%- if notify.emails %}
    body = "<br>".join(html.escape(line) for line in lines)
    SmtpNotifier(to=NOTIFY_EMAILS, subject=lines[0], html_content=body).notify(context)
{%- else %}
    SlackWebhookNotifier(slack_webhook_conn_id=NOTIFY_CONNECTION, text="\n".join(lines)).notify(context)
{%- endif %}
{%- endif %}


missing = [step for step in STEPS if step not in RESOURCES]
if missing:  # say it here: Airflow shows this message as the DAG's import error
    raise ValueError(f"RESOURCES has no line for step {', '.join(missing)}: add one per step of STEPS")

# The fields of the Trigger form. Every optional field may be left empty.
PARAMS = {
    "image_tag": Param(
        DEFAULT_IMAGE_TAG,
        type="string",
        pattern=IMAGE_TAG_PATTERN,
        title="Image tag",
        description=f"Version of {IMAGE} to run, e.g. 0.2.0. {{ image_tag_help }}",
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
        propertyNames={"pattern": r"{{ env_name_pattern }}"},
        title="Extra environment variables",
        description='A JSON object of strings, added to every step, e.g. {"EPOCHS": "3"}. '
        "Stored and shown in Airflow: no passwords here (see SECRETS).",
    ),
    "cpu": Param(
        None,
        type=["null", "string"],
        pattern=QUANTITY,
        title="CPU",
        description="CPUs for every step of this run, reserved and maximum, e.g. 4 or 500m. Empty: each step's own ("
        + ", ".join(f"{step} {'-'.join(reserved_and_max(step, 'cpu'))}" for step in RESOURCES)
        + ").",
    ),
    "memory": Param(
        None,
        type=["null", "string"],
        pattern=QUANTITY,
        title="Memory",
        description="Memory for every step of this run, reserved and maximum, e.g. 16Gi. Empty: each step's own ("
        + ", ".join(f"{step} {'-'.join(reserved_and_max(step, 'memory'))}" for step in RESOURCES)
        + ").",
    ),
{%- if sweep_steps %}
    **{
        sweep_field(step): Param(
            None,
            type=["null", "array"],
            minItems=1,
            maxItems=SWEEP_MAX,
            items={
                "type": "object",
                "additionalProperties": {"type": "string"},
                "propertyNames": {"pattern": r"{{ env_name_pattern }}", "not": {"enum": SET_BY_THE_RUN}},
            },
            title="Sweep" if len(STEPS) == 1 else f"Sweep of step {step}",
            description=f"A JSON list of env objects: {step} runs as one pod per object, {SWEEP_AT_ONCE} at a time, "
            'e.g. [{"LR": "0.1"}, {"LR": "0.01"}]. Each pod gets SWEEP_INDEX, SWEEP_SIZE and a folder of its own, '
            f"SWEEP_DIR. Empty: {step} runs once.",
        )
        for step in SWEEP_STEPS
    },
{%- endif %}
}


class JobPodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator whose pod, when its step starts, takes the Trigger form's command, cpu,
    memory and env, and the run's env. The step is the task id."""
{%- if sweep_steps %}

    def __init__(self, *, sweep_copy=None, **kwargs):
        super().__init__(**kwargs)
        self.sweep_copy = sweep_copy or {}  # one pod of a swept step (sweep_copies)
{%- endif %}

    def render_template_fields(self, context, jinja_env=None):
        super().render_template_fields(context, jinja_env)
        self.apply_form(context)
{%- if sweep_steps %}

    def execute(self, context):
        # A swept step's pods are the copies of a mapped task, which Airflow renders without the
        # method above: take the form here (again for the others: the same values).
        self.apply_form(context)
        return super().execute(context)
{%- endif %}

    def apply_form(self, context):
        form, step = context["params"], self.task_id
        self.arguments = [form.get(command_field(step)) or STEPS[step]]
        self.container_resources = container_resources(step, form)
        env = {var.name: var.value for var in self.env_vars}  # ENV, given as a list: the same on every provider
        env.update({**run_env(context), **(form.get("env") or {})})
{%- if sweep_steps %}
        env.update(sweep_env(step, self.sweep_copy, env["RUN_DIR"]))
{%- endif %}
        self.env_vars = [k8s.V1EnvVar(name=name, value=value) for name, value in env.items()]


with DAG(
    dag_id=DAG_ID,
    description={{ cookiecutter.description | py_str }},
    doc_md=__doc__,
    schedule={{ 'None' if schedule.lower() == 'none' else '"' ~ schedule ~ '"' }},
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    is_paused_upon_creation=False,
    params=PARAMS,
    tags=["confiance-job", DAG_ID],
    default_args={
        "owner": {{ cookiecutter.author_name | py_str }},
        "retries": 1,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(hours=24),
{%- if notify.emails or notify.connection %}
        "on_failure_callback": tell_failure,
{%- endif %}
    },
) as dag:
    previous = None
    for step, command in STEPS.items():
        gpu = gpu_placement(step)
        pod = dict(
            task_id=step,
            name=f"{DAG_ID}-{step}".replace("_", "-"),  # pod name (a random suffix is added)
            namespace="{{ cookiecutter.namespace }}",
            image=IMAGE + ":{% raw %}{{ params.image_tag }}{% endraw %}",
            image_pull_policy="Always",
            image_pull_secrets=[k8s.V1LocalObjectReference(name="{{ cookiecutter.image_pull_secret }}")],
            cmds=["bash", "-c"],
            arguments=[command],  # or the form's
            env_vars=[k8s.V1EnvVar(name=name, value=value) for name, value in ENV.items()],
            env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name)) for name in SECRETS],
            container_resources=container_resources(step, {}),  # or the form's
            affinity=gpu.get("affinity"),
            tolerations=gpu.get("tolerations"),
{%- if cookiecutter.use_nfs %}
            volumes=[NFS_VOLUME, *gpu.get("volumes", [])],
            volume_mounts=[NFS_MOUNT, *gpu.get("volume_mounts", [])],
{%- else %}
            volumes=gpu.get("volumes"),
            volume_mounts=gpu.get("volume_mounts"),
{%- endif %}
            in_cluster=True,
            get_logs=True,
            # On failure, write the container's end (exit code, OOMKilled, ImagePullBackOff) and the pod's
            # events (FailedScheduling: no node with the resources) in the log: make logs tells why from them.
            log_events_on_failure=True,
            # A finished pod, failed or not, is deleted: its log stays in Airflow. The provider's defaults
            # do the rest: a step marked failed or success in the UI has its pod deleted, and after a worker
            # dies the next try follows the running pod instead of starting a second one.
            on_finish_action="delete_pod",
            startup_timeout_seconds=600,  # time to pull a large image and to wait for free resources
        )
{%- if sweep_steps %}
        if step in SWEEP_STEPS:  # one pod per item of the form's sweep field: Airflow's dynamic task mapping
            copies = task(sweep_copies, task_id=sweep_field(step))(step)
            step_task = JobPodOperator.partial(
                **pod, max_active_tis_per_dagrun=SWEEP_AT_ONCE, map_index_template="{% raw %}{{ task.sweep_copy['label'] }}{% endraw %}"
            ).expand(sweep_copy=copies)
        else:
            step_task = JobPodOperator(**pod)
{%- else %}
        step_task = JobPodOperator(**pod)
{%- endif %}
        if previous:
            previous >> step_task
        previous = step_task
