"""The two image builders of the shared build job, as a CI runner gives them to a job.

docker: this machine's engine (a dind service stands in for it on GitLab).
buildah: Debian's buildah, no daemon: each pipeline gets an empty storage, as a fresh
runner has, and the base image a registry mirror would give (Docker Hub is not reachable),
from a read-only store seeded once from the Docker engine's stand-in.
"""

import itertools
import os
import shutil

from support.commands import need, run
from support.engines import BASE_IMAGE

BUILDERS = ("docker", "buildah")
# A job repo's choice, as its .gitlab-ci.yml carries it (an input of the build component).
BUILDER_LINE = 'image_builder: "docker"'


def choose_builder(repo, builder):
    """Set image_builder in the job repo's .gitlab-ci.yml, as its owner does (the caller commits)."""
    ci_file = repo / ".gitlab-ci.yml"
    text = ci_file.read_text()
    assert BUILDER_LINE in text, "the generated .gitlab-ci.yml no longer sets image_builder"
    ci_file.write_text(text.replace(BUILDER_LINE, f'image_builder: "{builder}"'))


class BuildahRunners:
    """Fresh buildah storages for pipelines, each seeing the base images of a shared read-only store."""

    def __init__(self, folder):
        need(shutil.which("buildah"), "buildah is not installed (apt-get install buildah)")
        self.folder = folder
        self.base_stores = {}  # storage driver -> store holding BASE_IMAGE
        self.counter = itertools.count()
        self.runners = []

    def base_store(self, driver):
        if driver not in self.base_stores:
            store = self.folder / f"base-{driver}"
            storage = ["--storage-driver", driver, "--root", store, "--runroot", self.folder / f"base-{driver}-run"]
            # The stand-in exists in the Docker engine only; its docker.io name comes with it.
            run(["buildah", *storage, "pull", "--quiet", f"docker-daemon:{BASE_IMAGE}"], timeout=600)
            self.base_stores[driver] = store
        return self.base_stores[driver]

    def fresh_runner(self, repo, driver=None):
        """Environment of a job on a new runner: empty storage and login file, and no Docker engine.

        With no `driver` the shared job picks the storage driver itself (overlay here, as root);
        driver="vfs" sets STORAGE_DRIVER as a job repo does for a runner that allows vfs only."""
        runner = repo / ".gitlab-ci-local" / f"buildah-runner-{next(self.counter)}"
        runner.mkdir(parents=True)
        self.runners.append(runner)
        (runner / "storage.conf").write_text(
            f"""[storage]
driver = "{driver or "overlay"}"
graphroot = "{runner / "storage"}"
runroot = "{runner / "run"}"
[storage.options]
additionalimagestores = ["{self.base_store(driver or "overlay")}"]
"""
        )
        env = {
            "CONTAINERS_STORAGE_CONF": str(runner / "storage.conf"),
            "REGISTRY_AUTH_FILE": str(runner / "auth.json"),
            "DOCKER_HOST": f"unix://{runner / 'no-docker-engine.sock'}",  # any docker command fails
        }
        if driver:
            env["STORAGE_DRIVER"] = driver
        return env

    def clean_up(self):
        """Remove the pipelines' storages (a vfs one holds a copy of the image per build step)."""
        for runner in self.runners:
            env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(runner / "storage.conf")}
            run(["buildah", "rm", "--all"], env=env, check=False)
            run(["buildah", "rmi", "--all", "--force"], env=env, check=False)
            shutil.rmtree(runner, ignore_errors=True)
        self.runners.clear()


class Builder:
    """One builder as the release tests use it: its name, and a fresh runner's environment for a pipeline."""

    def __init__(self, name, buildah_runners=None):
        self.name, self.buildah_runners = name, buildah_runners

    def __repr__(self):
        return self.name

    def runner_env(self, repo, **options):
        """{} for Docker (the tests' engine stands in for the dind service), a new buildah runner otherwise."""
        return self.buildah_runners.fresh_runner(repo, **options) if self.buildah_runners else {}
