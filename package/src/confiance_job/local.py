"""The same pod on your machine: a step's pod, as the DAG renders it, run with docker or podman.

Everything comes from the rendered pod (render.py): the command, the env, the CPU and memory
limits, the GPUs, the data volume and the Secrets. Only the host's side is chosen here: the job
repo's data/ folder stands for the data volume, and .env.secrets for the Kubernetes Secrets.
"""

import os
import shlex
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from .rules import QUANTITY, quantity_value

SECRETS_FILE = ".env.secrets"
# The keys of the Secrets the platform knows, to say what .env.secrets should hold.
KNOWN_SECRET_KEYS = {"mlflow-credentials": ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]}
IMAGE_UID = 1000  # the Dockerfile's USER


class LocalRunError(ValueError):
    """The pod cannot run here as it is: the message says what to do."""


def local_run_id(now=None):
    """A run id of its own for a local run: local__20261204T181500Z."""
    return (now or datetime.now(timezone.utc)).strftime("local__%Y%m%dT%H%M%SZ")


def engine_cpus(quantity, available=None):
    """Kubernetes CPUs as --cpus takes them: 500m -> 0.5, 2 -> 2; capped at this machine's CPUs."""
    cpus = quantity_value(str(quantity))
    if available:
        cpus = min(cpus, available)
    return f"{cpus:g}"


def engine_memory(quantity):
    """Kubernetes memory as --memory takes it: 16Gi -> 16g, 512Mi -> 512m, 1G -> 1000000000 (bytes)."""
    text = str(quantity)
    if not QUANTITY.match(text):
        raise LocalRunError(f"memory {text!r} is not a Kubernetes quantity")
    value = int(quantity_value(text))
    for unit, size in (("g", 2**30), ("m", 2**20), ("k", 2**10)):
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


def container_of(pod):
    return pod["spec"]["containers"][0]


def pod_env(pod):
    """{name: value} of the container's env, in order."""
    return {var["name"]: var.get("value", "") for var in container_of(pod).get("env") or []}


def secret_names(pod):
    """The Secrets whose keys the pod gets as env (envFrom.secretRef)."""
    return [source["secretRef"]["name"] for source in container_of(pod).get("envFrom") or [] if "secretRef" in source]


def data_mount(pod):
    """Where the pod sees its data: the NFS volume's mount path, else the root of DATA_DIR (/data/x -> /data)."""
    nfs = {volume["name"] for volume in pod["spec"].get("volumes") or [] if "nfs" in volume}
    for mount in container_of(pod).get("volumeMounts") or []:
        if mount["name"] in nfs:
            return mount["mountPath"]
    data_dir = PurePosixPath(pod_env(pod).get("DATA_DIR") or "/data")
    return str(PurePosixPath("/", *data_dir.parts[1:2]))


def shared_memory(pod):
    """The size of a memory-backed /dev/shm the pod mounts (GPU steps), or None."""
    volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes") or []}
    for mount in container_of(pod).get("volumeMounts") or []:
        empty_dir = volumes.get(mount["name"], {}).get("emptyDir") or {}
        if mount["mountPath"] == "/dev/shm" and empty_dir.get("medium") == "Memory":
            return empty_dir.get("sizeLimit")
    return None


def engine_args(
    pod, *, image, data, step="the step", secrets_file=None, engine="docker", has_gpu=False, cpus_here=None
):
    """(the engine's arguments to run this pod, lines to tell the user). Nothing here reads a secret's value."""
    container, notes = container_of(pod), []
    args = [engine, "run", "--rm"]
    limits = (container.get("resources") or {}).get("limits") or {}
    if "cpu" in limits:
        cpus = engine_cpus(limits["cpu"], cpus_here)
        if cpus != engine_cpus(limits["cpu"]):
            notes.append(f"{step}: CPU limit {limits['cpu']}, this machine has {cpus_here} CPUs: --cpus {cpus}")
        args += ["--cpus", cpus]
    if "memory" in limits:
        args += ["--memory", engine_memory(limits["memory"])]
    gpus = int(limits.get("nvidia.com/gpu") or 0)
    if gpus and has_gpu:
        args += ["--device", "nvidia.com/gpu=all"] if engine == "podman" else ["--gpus", str(gpus)]
    elif gpus:
        notes.append(
            f"{step}: asks for {gpus} GPU(s); this machine has none (no nvidia-smi), so it runs on the CPU here"
        )
    shm = shared_memory(pod)
    if shm:
        args += ["--shm-size", engine_memory(shm)]
    args += ["--volume", f"{Path(data).resolve()}:{data_mount(pod)}"]
    for mount in container.get("volumeMounts") or []:
        if mount["mountPath"] not in (data_mount(pod), "/dev/shm"):
            notes.append(f"{step}: the pod's volume {mount['name']} at {mount['mountPath']} is not mounted here")
    for name, value in pod_env(pod).items():
        args += ["--env", f"{name}={value}"]
    if secrets_file:
        args += ["--env-file", str(secrets_file)]
    command = container.get("command") or []
    if command:  # a pod's command replaces the image's entrypoint
        args += ["--entrypoint", command[0]]
    args += [image, *command[1:], *(container.get("args") or [])]
    return args, notes


def host_path(pod, data, container_path):
    """The host folder under data/ that the pod sees at container_path."""
    relative = PurePosixPath(container_path).relative_to(data_mount(pod))
    return Path(data, *relative.parts)


def prepare_data(pod, data):
    """Make data/ and the run's folder, writable by the image's user (uid 1000).

    When you are not uid 1000, the folders on the way to RUN_DIR are opened to all users (chmod 777),
    as the NFS share is for the pods; the files the steps write there then belong to uid 1000."""
    run_dir = pod_env(pod).get("RUN_DIR")
    target = host_path(pod, data, run_dir) if run_dir else Path(data)
    target.mkdir(parents=True, exist_ok=True)
    if os.getuid() == IMAGE_UID:
        return target
    folder = target
    while True:
        try:
            folder.chmod(0o777)
        except PermissionError:
            pass  # not ours: the step says so if it cannot write
        if folder.resolve() == Path(data).resolve() or folder == folder.parent:
            return target
        folder = folder.parent


def missing_secrets_message(names, secrets_file=SECRETS_FILE):
    keys = [key for name in names for key in KNOWN_SECRET_KEYS.get(name, [f"<the keys of {name}>"])]
    return (
        f"the pod gets the keys of the Secret(s) {', '.join(names)} and {secrets_file} is missing: "
        f"create it with one KEY=value line each ({', '.join(keys)}); git and docker ignore it"
    )


def find_engine(wanted=None):
    """docker, or podman where docker is missing (or the one asked for)."""
    for engine in [wanted] if wanted else ["docker", "podman"]:
        if shutil.which(engine):
            return engine
    raise LocalRunError(f"no {wanted or 'docker or podman'} here: install one to run the image")


def say_now(line):
    print(line, flush=True)  # before the engine's own output


def run_pods(pods, image, *, data="data", secrets_file=SECRETS_FILE, engine=None, title=None, say=say_now):
    """Run {step: pod} one after the other, as one DAG run; the exit code of the first that fails, or 0."""
    needed = sorted({name for pod in pods.values() for name in secret_names(pod)})
    if needed and not Path(secrets_file).is_file():
        raise LocalRunError(missing_secrets_message(needed, secrets_file))
    engine = find_engine(engine)
    has_gpu = shutil.which("nvidia-smi") is not None
    if title:
        say(title)
    for step, pod in pods.items():
        target = prepare_data(pod, data)
        args, notes = engine_args(
            pod,
            image=image,
            data=data,
            step=step,
            secrets_file=secrets_file if secret_names(pod) else None,
            engine=engine,
            has_gpu=has_gpu,
            cpus_here=os.cpu_count(),
        )
        for note in notes:
            say(note)
        say(f"{step}: RUN_DIR is {target} here")
        say("$ " + shlex.join(args))
        code = subprocess.run(args).returncode
        if code:
            say(f"{step} failed with exit code {code}")
            return code
    return 0
