"""Run a Kubernetes Pod manifest for real with `podman kube play`, standing in
for the cluster: the image is pulled from the registry with the credentials the
pull secret would hold, and the Kubernetes Secrets the pod reads (`envFrom.secretRef`,
`env[].valueFrom.secretKeyRef`) are podman secrets while the pod is created.
Only the NFS volume is swapped, for a folder of this machine."""

import base64
import copy
import fcntl
import json
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.commands import run

PODMAN = shutil.which("podman")
# Root here cannot raise its file limits (no CAP_SYS_RESOURCE); no systemd either.
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# Podman's secrets are one store for the whole machine, shared by parallel test workers.
SECRETS_LOCK = Path(tempfile.gettempdir()) / "podman-kube-secrets.lock"


@dataclass
class PodResult:
    exit_code: int | None  # None: the pod never started
    logs: str


def with_host_folder_for_nfs(manifest, folder):
    """The same pod, its NFS volumes replaced by a host folder (podman has no NFS volumes)."""
    pod = copy.deepcopy(manifest)
    for volume in pod["spec"].get("volumes") or []:
        if "nfs" in volume:
            del volume["nfs"]
            volume["hostPath"] = {"path": str(folder), "type": "Directory"}
    return pod


def podman_secret_content(values):
    """A Kubernetes Secret's data as podman 4.3 reads it for envFrom/secretKeyRef: a JSON object of base64
    values. (4.3 stores a `kind: Secret` given to `kube play` as YAML, then fails to read it back as JSON.)"""
    return json.dumps({key: base64.b64encode(value.encode()).decode() for key, value in values.items()})


class PodRunner:
    """`registry` (with .user and .password) gives the pull credentials; None pulls without any.
    `network` is podman's: "none" (no network at all), or "host" for pods that talk to a service
    of this machine on loopback (a tracking server standing in for the platform's)."""

    def __init__(self, folder, registry=None, network="none"):
        self.folder, self.registry, self.network = Path(folder), registry, network
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "containers.conf").write_text(CONTAINERS_CONF)
        self.env = {"CONTAINERS_CONF": str(self.folder / "containers.conf"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def podman(self, *args):
        return run([PODMAN, *args], env=self.env, check=False)

    def create_secret(self, name, values):
        # Through stdin: the values never sit in a file of ours.
        command = [PODMAN, "secret", "create", name, "-"]
        created = subprocess.run(
            command, input=podman_secret_content(values), env=self.env, capture_output=True, text=True
        )
        if created.returncode != 0:
            raise AssertionError(f"podman secret create {name} exited {created.returncode}\n{created.stderr}")

    @contextmanager
    def secrets_in_podman(self, secrets):
        """The secrets exist while the block runs, then are removed. Playing the pod is enough: podman copies
        their values into the containers' env when it creates them, as the kubelet does when it starts them."""
        if not secrets:
            yield
            return
        with open(SECRETS_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for name, values in secrets.items():
                    self.podman("secret", "rm", name)  # left by an interrupted run; 4.3 has no `create --replace`
                    self.create_secret(name, values)
                yield
            finally:
                for name in secrets:
                    self.podman("secret", "rm", name)

    def play(self, path):
        credentials = ["--creds", f"{self.registry.user}:{self.registry.password}"] if self.registry else []
        network = ["--network", self.network]
        return self.podman("kube", "play", "--replace", *network, "--tls-verify=false", *credentials, path)

    def run(self, manifest, nfs_folder, secrets=None):
        """Play the pod, wait for its container, return its exit code and logs, remove it.

        `secrets` is {secret name: {key: value}}, the Kubernetes Secrets of the pod's namespace."""
        pod = with_host_folder_for_nfs(manifest, nfs_folder)
        path = self.folder / f"{pod['metadata']['name']}.yaml"
        path.write_text(json.dumps(pod))  # JSON is YAML
        with self.secrets_in_podman(secrets):
            play = self.play(path)
        container = f"{pod['metadata']['name']}-{pod['spec']['containers'][0]['name']}"
        try:
            if play.returncode != 0:
                return PodResult(None, play.stdout + play.stderr)
            exit_code = int(self.podman("wait", container).stdout.strip())
            state = self.podman("inspect", container, "--format", "{{.State.Status}}").stdout.strip()
            logs = self.podman("logs", container)
            return PodResult(exit_code if state == "exited" else None, logs.stdout + logs.stderr)
        finally:
            self.podman("kube", "down", path)
