"""PodRunner gives a pod its Kubernetes Secrets as env vars, as the cluster does, with a real podman run."""

import hashlib
import shutil
import tarfile
from pathlib import Path

import pytest
from support.commands import need, run
from support.pods import PODMAN, PodRunner

pytestmark = [pytest.mark.engine]

# No registry can be reached here: the image is made of this machine's own tools.
IMAGE = "localhost/shell-standin:1"
TOOLS = ["sh", "env", "grep", "sha256sum"]
SECRET_NAME = "mlflow-credentials"


def shared_libraries(binary):
    """The absolute paths ldd lists for a binary, its loader included."""
    output = run(["ldd", binary]).stdout
    return [Path(word) for line in output.splitlines() for word in line.split() if word.startswith("/")]


def copy_into(root, source, target):
    destination = root / target.relative_to("/")
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, destination)  # follows symlinks, keeps the mode


def make_rootfs(root):
    """A root filesystem holding TOOLS in /bin and the libraries they load."""
    for tool in TOOLS:
        binary = Path(shutil.which(tool)).resolve()
        copy_into(root, binary, Path("/bin") / tool)
        for library in shared_libraries(binary):
            copy_into(root, library, library)


@pytest.fixture(scope="session")
def runner(tmp_path_factory):
    """A PodRunner without registry credentials, and IMAGE imported fresh (a leftover could hide a bug here)."""
    need(PODMAN, "podman is not installed (apt-get install podman catatonit)")
    root = tmp_path_factory.mktemp("rootfs")
    make_rootfs(root)
    tarball = root.parent / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(root, arcname=".")
    runner = PodRunner(tmp_path_factory.mktemp("podman"))
    imported = runner.podman("image", "import", "--change", "ENV PATH=/bin", tarball, IMAGE)
    assert imported.returncode == 0, imported.stderr
    yield runner
    runner.podman("image", "rm", "--force", IMAGE)


def pod_reading_the_secret():
    """A pod taking every key of the secret (envFrom) and one key by name (secretKeyRef); it prints hashes only."""
    script = (
        'printf "envFrom "; printf %s "$MLFLOW_TRACKING_PASSWORD" | sha256sum; '
        'printf "secretKeyRef "; printf %s "$PASSWORD_BY_KEY" | sha256sum; '
        'printf "keys "; env | grep -c "^MLFLOW_TRACKING_"'
    )
    container = {
        "name": "base",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
        "env": [
            {
                "name": "PASSWORD_BY_KEY",
                "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "MLFLOW_TRACKING_PASSWORD"}},
            }
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "secret-reader"},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


def credentials(password):
    return {SECRET_NAME: {"MLFLOW_TRACKING_USERNAME": "job-bot", "MLFLOW_TRACKING_PASSWORD": password}}


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_secret_reaches_the_process_as_env_vars_and_is_removed_after(runner, tmp_path):
    # Twice with the same secret name: the second run must see its own value, not a leftover.
    for password in ["s3cret value=with $igns", "another one"]:
        result = runner.run(pod_reading_the_secret(), tmp_path, secrets=credentials(password))
        assert result.exit_code == 0, result.logs
        assert f"envFrom {sha256(password)}" in result.logs
        assert f"secretKeyRef {sha256(password)}" in result.logs
        assert "keys 2" in result.logs
        assert password not in result.logs
        assert runner.podman("secret", "inspect", SECRET_NAME).returncode != 0, "the secret outlived its pod"


def test_a_pod_whose_secret_is_missing_does_not_start(runner, tmp_path):
    result = runner.run(pod_reading_the_secret(), tmp_path)
    assert result.exit_code is None
    assert f'no secret with name or id "{SECRET_NAME}"' in result.logs
