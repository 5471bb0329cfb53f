"""Local stand-ins for what lives on the company network: a Docker engine, a
Nexus-like registry with authentication, and the base image Docker Hub would give.

Each helper reuses what is already running or built, so a run pays for them once.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from conftest import CACHE, run, wait_until

# Debian's client speaks BuildKit to Debian's engine; a newer client on PATH may insist on buildx.
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
BASE_IMAGE = "python:3.11-slim"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def docker(*args, check=True, timeout=600, env=None):
    return run([DOCKER, *args], check=check, timeout=timeout, env=env)


def docker_is_up():
    return bool(DOCKER) and docker("info", check=False, timeout=30).returncode == 0


def start_dockerd():
    """Start dockerd in the background if none answers (there is no systemd here); True if one answers."""
    if docker_is_up():
        return True
    if not shutil.which("dockerd") or os.geteuid() != 0:
        return False
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / "dockerd.log", "ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    try:
        return wait_until(docker_is_up, timeout=60)
    except TimeoutError:
        return False


def ensure_base_image():
    """Import a Debian bookworm root filesystem as python:3.11-slim, once; False if that cannot be done here."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return True
    if not shutil.which("debootstrap"):
        return False
    rootfs = CACHE / "base-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    packages = "python3,python3-pip,python3-venv,ca-certificates"
    run(["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", rootfs, DEBIAN_MIRROR], timeout=900)
    # Behave like the official image: `python` and `pip` commands, pip allowed to install system-wide.
    (rootfs / "usr/bin/python").symlink_to("python3")
    (rootfs / "usr/bin/pip").symlink_to("pip3")
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    for folder in ["usr/share/doc", "usr/share/man", "var/lib/apt/lists", "var/cache/apt"]:
        shutil.rmtree(rootfs / folder, ignore_errors=True)
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        [DOCKER, "import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]', "-", BASE_IMAGE],
        stdin=tar.stdout,
        check=True,
        capture_output=True,
    )
    tar.wait()
    shutil.rmtree(rootfs)
    return True


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(address):
    """True once something listens on host:port."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=1):
        return True


class Registry:
    """Debian's docker-registry with htpasswd authentication, on a loopback port."""

    def __init__(self, folder, user="ci-pusher", password="n3xus:P@ss/word"):
        self.folder, self.user, self.password = Path(folder), user, password
        self.host = f"127.0.0.1:{free_port()}"
        self.process = None

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        htpasswd = run(["htpasswd", "-Bbn", self.user, self.password]).stdout
        (self.folder / "htpasswd").write_text(htpasswd)
        (self.folder / "config.yml").write_text(
            f"""version: 0.1
storage:
  filesystem: {{rootdirectory: {self.folder / "data"}}}
  delete: {{enabled: true}}
http: {{addr: {self.host}}}
auth:
  htpasswd: {{realm: nexus, path: {self.folder / "htpasswd"}}}
"""
        )
        log = open(self.folder / "registry.log", "ab")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", self.folder / "config.yml"], stdout=log, stderr=log
        )
        host, port = self.host.split(":")
        wait_until(
            lambda: socket.create_connection((host, int(port)), timeout=1).close() or True, timeout=10, every=0.1
        )
        return self

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)

    def tags(self, repository):
        """The tags the registry API lists for a repository ([] when it has none)."""
        request = urllib.request.Request(f"http://{self.host}/v2/{repository}/tags/list")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return sorted(json.load(response)["tags"] or [])
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
