"""Both images, built side by side: cold, after a code change, after a requirements change; their size
and whether the pip password shows."""

import os
import shutil
from pathlib import Path

from measuring import BASELINE, BENCH_BASE, bake, median, timed
from support.engines import BASE_IMAGE, docker

PIP_PASSWORD = "Bench-Nexus-S3cret"


def build_bench_base(folder):
    """The base both images start from: the local python image plus this network's CA certificates."""
    context = folder / "bench-base"
    (context / "certs").mkdir(parents=True)
    for certificate in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(certificate, context / "certs")
    (context / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY certs/ /usr/local/share/ca-certificates/\nRUN update-ca-certificates\n"
        "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
    )
    build(context, BENCH_BASE)


def build(context, tag, *options):
    docker(
        "build", "--quiet", *options, "--tag", tag, context, env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=1800
    )


def make_contexts(folder, requirements):
    """Our generated repo, and the baseline's files around the same main.py and requirements."""
    ours = bake(folder / "ours", base_image=BENCH_BASE)
    (ours / "requirements.txt").write_text(requirements)
    baseline = folder / "baseline"
    baseline.mkdir()
    shutil.copy(BASELINE / "Dockerfile", baseline / "Dockerfile")
    shutil.copy(ours / "main.py", baseline / "main.py")
    (baseline / "requirements.txt").write_text(requirements)
    pip_conf = folder / "pip.conf"  # what CI passes as a secret: an index with a password
    pip_conf.write_text(f"[global]\nindex-url = https://bench:{PIP_PASSWORD}@pypi.org/simple\n")
    return {
        "ours": (ours, ["--secret", f"id=pip_conf,src={pip_conf}"]),
        "baseline": (baseline, ["--build-arg", "USER_NEXUS=bench", "--build-arg", f"PASSWORD_NEXUS={PIP_PASSWORD}"]),
    }


def measure_image(name, context, options, settings):
    tag = f"bench-{name}:latest"
    docker("builder", "prune", "--all", "--force")  # start cold: no cache from an earlier build
    first = timed(build, context, tag, *options)
    rebuilds, requirement_changes = [], []
    for attempt in range(settings["repeat"]):
        main_py = context / "main.py"
        main_py.write_text(main_py.read_text() + f"\n# code change {attempt}\n")  # one line of code
        rebuilds.append(timed(build, context, tag, *options))
    requirements = context / "requirements.txt"
    for attempt in range(settings["repeat"]):  # one package added, then removed, ...
        added = settings["added_requirement"] if attempt % 2 == 0 else ""
        # ... each time in a file no build saw before: a removal back to an earlier file would reuse its layer.
        requirements.write_text(f"{settings['requirements']}{added}# requirements change {attempt}\n")
        requirement_changes.append(timed(build, context, tag, *options))
    requirements.write_text(settings["requirements"])
    size = int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    visible = docker("history", "--no-trunc", tag).stdout + docker("image", "inspect", tag).stdout
    return {
        "first_build_s": first,
        "code_only_rebuild_s": median(rebuilds),
        "requirements_change_rebuild_s": median(requirement_changes),
        "image_mb": size / 1e6,
        "password_in_history_or_config": PIP_PASSWORD in visible,
    }
