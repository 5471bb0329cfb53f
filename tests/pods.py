"""Run a Kubernetes Pod manifest for real with `podman kube play`, standing in
for the cluster: the image is pulled from the registry with the credentials the
pull secret would hold. Only the NFS volume is swapped, for a folder of this machine."""

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from conftest import run

PODMAN = shutil.which("podman")
# Root here cannot raise its file limits (no CAP_SYS_RESOURCE); no systemd either.
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


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


class PodRunner:
    def __init__(self, folder, registry):
        self.folder, self.registry = Path(folder), registry
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "containers.conf").write_text(CONTAINERS_CONF)
        self.env = {"CONTAINERS_CONF": str(self.folder / "containers.conf"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def podman(self, *args):
        return run([PODMAN, *args], env=self.env, check=False)

    def run(self, manifest, nfs_folder):
        """Play the pod, wait for its container, return its exit code and logs, remove it."""
        pod = with_host_folder_for_nfs(manifest, nfs_folder)
        path = self.folder / f"{pod['metadata']['name']}.yaml"
        path.write_text(json.dumps(pod))  # JSON is YAML
        credentials = f"{self.registry.user}:{self.registry.password}"
        play = self.podman(
            "kube", "play", "--replace", "--network", "none", "--tls-verify=false", "--creds", credentials, path
        )
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
