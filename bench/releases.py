"""Per builder, through the test suite's GitLab stand-in: the tag pipeline of a job whose dependency layer
is large, then a code-only release on a fresh runner, and that release's limit."""

import hashlib
import json
import os
import sys
import time

from measuring import median
from support.builders import BuildahRunners, Builder
from support.engines import MANIFEST_TYPES, Registry, docker
from support.gitlab import GITLAB_CI_LOCAL, FakeGitLab, git
from support.release import job_repo, release


def measure_releases(folder, settings, python):
    if not GITLAB_CI_LOCAL:
        sys.exit("bench: gitlab-ci-local is not installed (see README: .ci/run provisions it)")
    registry = Registry(folder / "registry").start()
    runners = BuildahRunners(folder / "buildah")
    results = {}
    try:
        gitlab = FakeGitLab.with_shared_projects(folder / "gitlab")
        for name in ("docker", "buildah"):
            builder = Builder(name, runners if name == "buildah" else None)
            results[name] = measure_release(folder, registry, gitlab, builder, settings, python)
            runners.clean_up()
    finally:
        registry.stop()
        runners.clean_up()
        forget_local_images(registry, "confiance/bench-docker")
    return results


def measure_release(folder, registry, gitlab, builder, settings, python):
    name = builder.name
    repository = f"confiance/bench-{name}"
    repo = job_repo(folder / name, registry, f"bench-{name}", builder)
    add_large_dependency_layer(repo, settings["dependency_layer_mb"])
    git("commit", "-q", "-am", "A large dependency layer", cwd=repo)
    first = release(repo, gitlab, registry, python, tag="v0.1.0", runner_env=builder.runner_env(repo))
    if first.returncode != 0:
        raise RuntimeError(f"the {name} tag pipeline failed:\n{first.output}")
    (repo / "main.py").write_text((repo / "main.py").read_text() + "\n# A code-only change.\n")
    git("commit", "-q", "-am", "Change the code only", cwd=repo)
    forget_local_images(registry, repository)  # a fresh runner: docker's dind, or a new buildah storage
    second = release(repo, gitlab, registry, python, tag="v0.1.1", runner_env=builder.runner_env(repo))
    if second.returncode != 0:
        raise RuntimeError(f"the {name} code-only release failed:\n{second.output}")
    return {
        "pipeline_s": first.seconds,
        "sync_s": first.job_seconds.get("airflow-dag-sync"),
        **prefixed("first_", build_and_push(first, registry, repository, "0.1.0")),
        **prefixed("code_only_", build_and_push(second, registry, repository, "0.1.1")),
        "code_only_release_s": second.job_seconds.get("nexus-image"),
        "changed_kb": bytes_not_in(registry, repository, "0.1.1", "0.1.0") / 1000,
        "push_only_changed_layer_s": median(
            [push_only_what_changed(registry, repository, "0.1.1", "0.1.0", f"limit-{i}") for i in range(3)]
        ),
    }


def prefixed(prefix, values):
    return {f"{prefix}{key}": value for key, value in values.items()}


def add_large_dependency_layer(repo, megabytes):
    """Stand in for a big dependency install (PyTorch, CUDA libraries): incompressible bytes in a layer
    of their own next to the dependencies, cached like them (before the code is copied)."""
    dockerfile = repo / "Dockerfile"
    large = f"RUN head -c {megabytes}M /dev/urandom > /opt/large-dependencies.bin\n\nCOPY . .\n"
    dockerfile.write_text(dockerfile.read_text().replace("COPY . .\n", large, 1))


def forget_local_images(registry, repository):
    images = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{registry.host}/{repository}").stdout
    if images.split():
        docker("image", "rm", "--force", *images.split())
    docker("builder", "prune", "--all", "--force")


def build_and_push(pipeline, registry, repository, version):
    """The job's own timings (whole seconds): "Built <image> in N s", "Pushed <image> in N s"."""
    log = pipeline.logs["nexus-image"]
    image = f"{registry.host}/{repository}:{version}"
    return {f"{kind.lower()}_s": int(log.split(f"{kind} {image} in ")[1].split()[0]) for kind in ("Built", "Pushed")}


def manifest(registry, repository, tag):
    with registry.get(f"{repository}/manifests/{tag}", Accept=MANIFEST_TYPES) as response:
        return response.read(), response.headers["Content-Type"]


def bytes_not_in(registry, repository, tag, previous):
    """What a push of `tag` must upload when the registry already has `previous`: its new blobs."""
    new, old = (json.loads(manifest(registry, repository, t)[0]) for t in (tag, previous))
    known = {blob["digest"] for blob in old["layers"] + [old["config"]]}
    return sum(blob["size"] for blob in new["layers"] + [new["config"]] if blob["digest"] not in known)


def push_only_what_changed(registry, repository, tag, previous, new_tag):
    """The limit of a code-only release: upload as many fresh bytes as its new blobs hold, then its manifest."""
    body, content_type = manifest(registry, repository, tag)
    data = os.urandom(bytes_not_in(registry, repository, tag, previous))
    started = time.perf_counter()
    with registry.request("POST", f"{repository}/blobs/uploads/") as response:
        location = response.headers["Location"]
    separator = "&" if "?" in location else "?"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    upload = f"{location}{separator}digest={digest}"
    registry.request("PUT", upload, data, **{"Content-Type": "application/octet-stream"}).close()
    registry.request("PUT", f"{repository}/manifests/{new_tag}", body, **{"Content-Type": content_type}).close()
    return time.perf_counter() - started
