"""confiance-job against the platform's hand-made "Template Run One Job", side by side.

    make bench                      # full: 5 repetitions, pandas as the dependency
    make bench BENCH_ARGS=--quick   # one repetition, small inputs (what CI runs)

Both are measured in the same run, on the same base image, with the same main.py
and requirements; prints a table of medians and ratios (ours / baseline) and
writes bench/results/bench-<mode>.json. Timings are reported, never judged.
"""

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's engines, GitLab stand-in and helpers

from support.commands import run  # noqa: E402
from support.engines import BASE_IMAGE, Registry, docker, ensure_base_image, start_dockerd  # noqa: E402
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv  # noqa: E402

BASELINE = ROOT / "bench" / "baseline"
PARSE_DAGS = ROOT / "bench" / "parse_dags.py"
BENCH_BASE = "bench-base:latest"
PIP_PASSWORD = "Bench-Nexus-S3cret"
# A data scientist's usual requirements; the change adds one package, as a user does.
DATA_SCIENCE = "numpy==2.1.3\npandas==2.2.3\nscikit-learn==1.5.2\nmatplotlib==3.9.2\n"
MODES = {
    "full": {
        "repeat": 5,
        "requirements": DATA_SCIENCE,
        "added_requirement": "tabulate==0.9.0\n",
        "dependency_layer_mb": 1024,
        "dag_counts": [1, 50, 200],
    },
    "quick": {
        "repeat": 1,
        "requirements": "six==1.16.0\n",
        "added_requirement": "tabulate==0.9.0\n",
        "dependency_layer_mb": 32,
        "dag_counts": [1, 20],
    },
}


def bake(folder, **answers):
    """cookiecutter's own CLI, its output kept out of the report."""
    cookiecutter = Path(sys.executable).parent / "cookiecutter"
    options = [f"{name}={value}" for name, value in answers.items()]
    run([cookiecutter, "--no-input", "-o", folder, ROOT, *options])
    return folder / "my-job"


@contextlib.contextmanager
def quiet():
    """Keep what cookiecutter's hooks and builds print out of the report (file descriptor 1)."""
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def median(values):
    return statistics.median(values) if values else None


def timed(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


# ---- images ----


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
        requirements.write_text(settings["requirements"] + added)
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


# ---- DAG parsing ----


def dag_copies(folder, text, dag_id, count):
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"dag_{index}.py").write_text(text.replace(dag_id, f"{dag_id}-{index}"))
    return folder


def parse(python, *args):
    return json.loads(run([python, PARSE_DAGS, *args], timeout=1800).stdout.strip().splitlines()[-1])


def measure_dags(folder, python, counts, repeat):
    # The same pod features as the baseline's generic DAG: no volume (use_nfs off).
    ours_dag = bake(folder / "dag-source", use_nfs="no") / "dags" / "my-job.py"
    ours = ours_dag.read_text().replace('DAG_ID = "my-job"', 'DAG_ID = "bench"')
    dags = {
        "ours": (ours, '"bench"'),
        "baseline": ((BASELINE / "generic_dag.py").read_text(), "'template-run-one-job'"),
    }
    results = {}
    for name, (text, dag_id) in dags.items():
        one = dag_copies(folder / name / "one", text, dag_id.strip("'\""), 1) / "dag_0.py"
        result = {"import_one_ms": parse(python, "import", one, str(max(repeat, 5)))["median_ms"]}
        for count in counts:
            copies = dag_copies(folder / name / str(count), text, dag_id.strip("'\""), count)
            loads = [parse(python, "dagbag", copies) for _ in range(repeat)]
            assert all(load["dags"] == count and load["import_errors"] == 0 for load in loads), loads
            result[f"dagbag_{count}_s"] = median([load["seconds"] for load in loads])
        largest, smaller = counts[-1], counts[-2]
        result["per_dag_ms"] = result[f"dagbag_{largest}_s"] / largest * 1000
        # What one more DAG costs: free of one-time costs (first imports, first schema check).
        growth = result[f"dagbag_{largest}_s"] - result[f"dagbag_{smaller}_s"]
        result["marginal_per_dag_ms"] = growth / (largest - smaller) * 1000
        results[name] = result
    return results


# ---- bake and release ----


def measure_bake(folder, repeat):
    return {"bake_s": median([timed(bake, folder / f"bake-{i}") for i in range(max(repeat, 3))])}


def measure_releases(folder, settings):
    """Per builder, through the test suite's GitLab stand-in: the tag pipeline of a job whose dependency
    layer is large, then a code-only release on a fresh runner, and that release's limit."""
    from support.builders import BuildahRunners, Builder
    from support.gitlab import GITLAB_CI_LOCAL, FakeGitLab, git
    from support.release import job_repo, release

    if not GITLAB_CI_LOCAL:
        sys.exit("bench: gitlab-ci-local is not installed (see README: .ci/run provisions it)")
    registry = Registry(folder / "registry").start()
    runners = BuildahRunners(folder / "buildah")
    python = ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS)
    results = {}
    try:
        gitlab = FakeGitLab.with_shared_projects(folder / "gitlab")
        for name in ("docker", "buildah"):
            builder = Builder(name, runners if name == "buildah" else None)
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
            changed_bytes = bytes_not_in(registry, repository, "0.1.1", "0.1.0")
            results[name] = {
                "pipeline_s": first.seconds,
                "sync_s": first.job_seconds.get("airflow-dag-sync"),
                **prefixed("first_", build_and_push(first, registry, repository, "0.1.0")),
                **prefixed("code_only_", build_and_push(second, registry, repository, "0.1.1")),
                "code_only_release_s": second.job_seconds.get("nexus-image"),
                "changed_kb": changed_bytes / 1000,
                "push_only_changed_layer_s": median(
                    [push_only_what_changed(registry, repository, "0.1.1", "0.1.0", f"limit-{i}") for i in range(3)]
                ),
            }
            runners.clean_up()
    finally:
        registry.stop()
        runners.clean_up()
        forget_local_images(registry, "confiance/bench-docker")
    return results


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


MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


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


# ---- report ----


def ratio(ours, baseline):
    return ours / baseline if ours is not None and baseline else None


def table(results):
    images, dags = results["images"], results["dags"]
    rows = [
        (
            "code-only rebuild (s)",
            images["ours"]["code_only_rebuild_s"],
            images["baseline"]["code_only_rebuild_s"],
            "ours >= 10x faster (ratio <= 0.1)",
        ),
        ("first build, cold (s)", images["ours"]["first_build_s"], images["baseline"]["first_build_s"], "ratio <= 0.5"),
        (
            "requirements change, rebuild (s)",
            images["ours"]["requirements_change_rebuild_s"],
            images["baseline"]["requirements_change_rebuild_s"],
            "",
        ),
        ("image size (MB)", images["ours"]["image_mb"], images["baseline"]["image_mb"], "ratio <= 1"),
        (
            "pip password in history/config",
            images["ours"]["password_in_history_or_config"],
            images["baseline"]["password_in_history_or_config"],
            "ours: no",
        ),
        ("import one DAG file (ms)", dags["ours"]["import_one_ms"], dags["baseline"]["import_one_ms"], ""),
    ]
    for key in sorted((k for k in dags["ours"] if k.startswith("dagbag_")), key=lambda k: int(k.split("_")[1])):
        rows.append((f"DagBag, {key.split('_')[1]} DAGs (s)", dags["ours"][key], dags["baseline"][key], ""))
    rows.append(("parse cost per DAG, average (ms)", dags["ours"]["per_dag_ms"], dags["baseline"]["per_dag_ms"], ""))
    rows.append(
        (
            "parse cost of one more DAG (ms)",
            dags["ours"]["marginal_per_dag_ms"],
            dags["baseline"]["marginal_per_dag_ms"],
            "ratio <= 1.2",
        )
    )
    rows.append(("bake, cookiecutter --no-input (s)", results["bake"]["bake_s"], None, "< 1 s"))
    for name, release in results["releases"].items():
        steps = ("pipeline_s", "first_built_s", "first_pushed_s", "sync_s", "code_only_built_s", "code_only_pushed_s")
        for key in steps:
            rows.append((f"{name}: {key[:-2].replace('_', ' ')} (s)", release[key], None, ""))
        rows.append(
            (
                f"{name}: code-only release on a fresh runner (s) vs its limit:"
                f" a push of the {release['changed_kb']:.0f} kB that changed",
                release["code_only_release_s"],
                release["push_only_changed_layer_s"],
                "",
            )
        )

    unmeasured = [name for name, ours, _, _ in rows if ours is None]
    if unmeasured:  # an empty cell would read as "not measured" or "zero": say which measurement gave nothing
        sys.exit(
            "bench: no number for "
            + "; ".join(unmeasured)
            + " (bench/results/bench-<mode>.json holds what was measured)"
        )

    def cell(value):
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| metric | ours | baseline | ours / baseline | goal |", "|---|---|---|---|---|"]
    for name, ours, baseline, goal in rows:
        numeric = not isinstance(ours, bool) and isinstance(ours, (int, float))
        lines.append(
            f"| {name} | {cell(ours)} | {cell(baseline)} | {cell(ratio(ours, baseline)) if numeric else ''} | {goal} |"
        )
    return "\n".join(lines)


def machine():
    cpu = next(
        (
            line.split(":")[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    engine = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    buildah = run(["buildah", "--version"]).stdout.split()[2] if shutil.which("buildah") else "missing"
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, Docker {engine}, buildah {buildah},"
        f" Python {platform.python_version()}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, small inputs")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    settings = MODES[mode]
    if not (start_dockerd() and ensure_base_image()):
        sys.exit("bench: needs a Docker engine and the base image (see README: .ci/run provisions them)")
    airflow2 = ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS)
    with tempfile.TemporaryDirectory(prefix="confiance-bench-") as scratch, quiet():
        folder = Path(scratch)
        build_bench_base(folder)
        contexts = make_contexts(folder, settings["requirements"])
        results = {
            "mode": mode,
            "machine": machine(),
            "images": {name: measure_image(name, *context, settings) for name, context in contexts.items()},
            "dags": measure_dags(folder / "dags", airflow2, settings["dag_counts"], settings["repeat"]),
            "bake": measure_bake(folder / "bakes", settings["repeat"]),
            "releases": measure_releases(folder / "releases", settings),
        }
    output = ROOT / "bench" / "results" / f"bench-{mode}.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"\nconfiance-job vs the hand-made template, {mode} mode, medians of {settings['repeat']}")
    print(f"requirements: {settings['requirements'].strip().replace(chr(10), ', ')}")
    layer = settings["dependency_layer_mb"]
    print(f"release rows: a job with a {layer} MB dependency layer; there, the baseline column is the limit")
    print(f"machine: {results['machine']}\n")
    print(table(results))
    print(f"\n{output.relative_to(ROOT)} holds every number.")


if __name__ == "__main__":
    main()
