"""Local stand-ins for what lives on the company network: a Docker engine, a
Nexus-like registry with authentication, and the base images Docker Hub would give.

Each helper reuses what is already running or built, so a run pays for them once.
"""

import base64
import fcntl
import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from support import CACHE
from support.commands import run, wait_until

# Debian's client speaks BuildKit to Debian's engine; a newer client on PATH may insist on buildx.
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
DEBIAN_MIRROR = "http://deb.debian.org/debian"

# Stand-ins for images Docker Hub would give, made from a Debian bookworm root filesystem.
BASE_IMAGE = "python:3.11-slim"
CUDA_BASE_IMAGE = "nvidia/cuda:12.6.3-runtime-ubuntu24.04"
BASE_IMAGES = (BASE_IMAGE, CUDA_BASE_IMAGE)
# Holds the CONFIANCE_FRESH_BASE_IMAGES value of the run that last built them.
BASE_IMAGES_BUILT = CACHE / "base-images.built"

# Files both real images have: later `apt-get install`s stay slim, `apt-get update` skips translations.
SLIM_CONFIG_FILES = {
    "etc/dpkg/dpkg.cfg.d/excludes": """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*/LC_MESSAGES/*.mo
""",
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
}
PYTHON_IMAGE_CONFIG = ["ENV LANG=C.UTF-8", 'CMD ["python3"]']
CUDA_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"
# The real image's settings, but no LANG: NVIDIA's images do not set one.
CUDA_IMAGE_CONFIG = [
    "ENV PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV NVARCH=x86_64",
    "ENV CUDA_VERSION=12.6.3",
    "ENV LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
    "ENV NVIDIA_VISIBLE_DEVICES=all",
    "ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility",
    "ENV NVIDIA_PRODUCT_NAME=CUDA",
    f'ENTRYPOINT ["{CUDA_ENTRYPOINT}"]',
    'CMD ["/bin/bash"]',
]
# Like NVIDIA's entrypoint: a banner on stdout before every command, so output parsers meet it too.
CUDA_ENTRYPOINT_SCRIPT = """#!/bin/bash
cat <<BANNER

==========
== CUDA ==
==========

CUDA Version $CUDA_VERSION

WARNING: The NVIDIA Driver was not detected.  GPU functionality will not be available.

BANNER
if [ $# -eq 0 ]; then exec /bin/bash; fi
exec "$@"
"""


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


def ensure_base_images():
    """The stand-ins for BASE_IMAGES in the engine, built at most once per run; False if that cannot be done here.

    Without CONFIANCE_FRESH_BASE_IMAGES they are built only when missing. With it (.ci/run sets it to an id of
    the run), the first call of the run removes and rebuilds them, so a leftover image never hides a broken
    recipe; later calls (pytest-xdist workers, the bench, then the tests) reuse what that call built.
    """
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / "base-images.lock", "w") as lock:  # pytest-xdist workers may race here
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_id = os.environ.get("CONFIANCE_FRESH_BASE_IMAGES")
        if run_id and not built_in_this_run(run_id):
            docker("image", "rm", "--force", *BASE_IMAGES, check=False)
        if all(map(image_exists, BASE_IMAGES)):
            return True
        if not shutil.which("debootstrap") or os.geteuid() != 0:
            return False
        build_base_images()
        BASE_IMAGES_BUILT.write_text(run_id or "")
        return True


def built_in_this_run(run_id):
    return BASE_IMAGES_BUILT.exists() and BASE_IMAGES_BUILT.read_text() == run_id


def image_exists(tag):
    return docker("image", "inspect", tag, check=False).returncode == 0


def build_base_images():
    """One debootstrap for both: the CUDA-like image from the bare system, then python:3.11-slim from it plus Python."""
    rootfs = CACHE / "base-rootfs"
    debootstrap(rootfs)
    make_cuda_like(rootfs)
    import_rootfs(rootfs, CUDA_BASE_IMAGE, CUDA_IMAGE_CONFIG)
    make_python_slim_like(rootfs)
    import_rootfs(rootfs, BASE_IMAGE, PYTHON_IMAGE_CONFIG)
    shutil.rmtree(rootfs)


def debootstrap(rootfs):
    """A bare Debian bookworm (minbase, plus the CA bundle every real base image has), stripped like a slim image."""
    shutil.rmtree(rootfs, ignore_errors=True)
    command = ["debootstrap", "--variant=minbase", "--include=ca-certificates", "bookworm", rootfs, DEBIAN_MIRROR]
    run(command, timeout=900)
    for path, text in SLIM_CONFIG_FILES.items():
        (rootfs / path).write_text(text)
    strip(rootfs)


def make_cuda_like(rootfs):
    """What a Dockerfile meets on NVIDIA's Ubuntu 24.04 images: no Python, a user `ubuntu` (uid 1000), a banner."""
    user = ["--uid", "1000", "--user-group", "--create-home", "--key", "HOME_MODE=0750", "--shell", "/bin/bash"]
    in_chroot(rootfs, "useradd", *user, "ubuntu")
    entrypoint = rootfs / CUDA_ENTRYPOINT.lstrip("/")
    entrypoint.parent.mkdir(parents=True)
    entrypoint.write_text(CUDA_ENTRYPOINT_SCRIPT)
    entrypoint.chmod(0o755)


def make_python_slim_like(rootfs):
    """Undo the CUDA-only parts, then add what the official python image has: python, pip, venv, no uid 1000."""
    in_chroot(rootfs, "userdel", "--remove", "ubuntu")
    shutil.rmtree(rootfs / "opt/nvidia")
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")  # apt inside the chroot resolves the mirror
    apt_get = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-qq", "-o", "Dpkg::Use-Pty=0"]
    in_chroot(rootfs, *apt_get, "update")
    in_chroot(rootfs, *apt_get, "install", "-y", "--no-install-recommends", "python3", "python3-pip", "python3-venv")
    # The official image has `python` and `pip` commands (bookworm's python3-pip ships pip already).
    for command, target in [("python", "python3"), ("pip", "pip3")]:
        link = rootfs / "usr/bin" / command
        if not link.exists():
            link.symlink_to(target)
    # ... and lets pip install system-wide.
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    strip(rootfs)


def in_chroot(rootfs, *command):
    return run(["chroot", rootfs, *command], timeout=900)


def strip(rootfs):
    """Drop what slim images drop (docs, downloaded packages, apt lists: a Dockerfile must `apt-get update`),
    and what describes this machine rather than the image (Docker provides both files in a container)."""
    patterns = ["usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*/LC_MESSAGES"]
    patterns += ["var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"]
    patterns += ["etc/hostname", "etc/resolv.conf"]
    for pattern in patterns:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def import_rootfs(rootfs, tag, config):
    """`docker import` the folder as one layer, with Dockerfile-like config lines (ENV, CMD, ENTRYPOINT)."""
    changes = [argument for line in config for argument in ("--change", line)]
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    importer = subprocess.Popen(
        [DOCKER, "import", *changes, "-", tag],
        stdin=tar.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tar.stdout.close()  # so that tar stops, rather than hangs, if the import fails
    output, errors = importer.communicate(timeout=600)
    if tar.wait() != 0 or importer.returncode != 0:
        raise AssertionError(f"importing {rootfs} as {tag} failed (tar {tar.returncode}):\n{output}\n{errors}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_answers(address):
    """True once something listens on host:port."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=1):
        return True


# The manifests a registry may serve for an image of one platform: Docker's or OCI's.
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


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
        try:
            with self.get(f"{repository}/tags/list") as response:
                return sorted(json.load(response)["tags"] or [])
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise

    def docker_login(self, folder):
        """Environment for `docker` commands logged in to this registry, as a cluster node with its pull secret."""
        env = {**os.environ, "DOCKER_CONFIG": str(folder)}
        login = [DOCKER, "login", "--username", self.user, "--password-stdin", self.host]
        subprocess.run(login, input=self.password, env=env, check=True, capture_output=True, text=True, timeout=60)
        return env

    def digest(self, repository, tag):
        """The digest of the manifest the registry serves for repository:tag (what a pull gets)."""
        with self.get(f"{repository}/manifests/{tag}", Accept=MANIFEST_TYPES) as response:
            return response.headers["Docker-Content-Digest"]

    def get(self, path, **headers):
        """GET /v2/<path> with the registry's credentials."""
        return self.request("GET", path, **headers)

    def request(self, method, path, data=None, **headers):
        """An API call with the registry's credentials; `path` is below /v2/, or a URL the registry gave."""
        url = (
            path if path.startswith("http") else f"http://{self.host}{path if path.startswith('/') else '/v2/' + path}"
        )
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        return urllib.request.urlopen(request, timeout=60)
