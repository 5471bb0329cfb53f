"""confiance-job against the platform's hand-made "Template Run One Job", side by side.

    make bench                      # full: 5 repetitions, the data-science set as the dependencies
    make bench BENCH_ARGS=--quick   # one repetition, small inputs (what CI runs)

Both are measured in the same run, on the same base image, with the same main.py
and requirements; prints a table of medians and ratios (ours / baseline) and
writes bench/results/bench-<mode>.json. Timings are reported, never judged.
The full run also writes its table into README.md's Performance section.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's engines, GitLab stand-in and helpers

import report  # noqa: E402
from dags import measure_dags  # noqa: E402
from images import build_bench_base, make_contexts, measure_image  # noqa: E402
from measuring import measure_bake  # noqa: E402
from releases import measure_releases  # noqa: E402
from support.commands import run  # noqa: E402
from support.engines import docker, ensure_base_images, start_dockerd  # noqa: E402
from support.venvs import AIRFLOW_LINES, AIRFLOW_TOOLS, ensure_venv  # noqa: E402

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


def measure(settings):
    airflow2 = ensure_venv("airflow2", AIRFLOW_LINES["airflow2"] + AIRFLOW_TOOLS)
    with tempfile.TemporaryDirectory(prefix="confiance-bench-") as scratch, quiet():
        folder = Path(scratch)
        build_bench_base(folder)
        contexts = make_contexts(folder, settings["requirements"])
        return {
            "images": {name: measure_image(name, *context, settings) for name, context in contexts.items()},
            "dags": measure_dags(folder / "dags", airflow2, settings["dag_counts"], settings["repeat"]),
            "bake": measure_bake(folder / "bakes", settings["repeat"]),
            "releases": measure_releases(folder / "releases", settings, airflow2),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, small inputs")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    settings = MODES[mode]
    if not (start_dockerd() and ensure_base_images()):
        sys.exit("bench: needs a Docker engine and the base image (see README: .ci/run provisions them)")
    started = time.monotonic()
    measured = measure(settings)
    results = {
        "mode": mode,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "settings": settings,
        "wall_time_s": time.monotonic() - started,
        **measured,
    }
    output = ROOT / "bench" / "results" / f"bench-{mode}.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nconfiance-job vs the hand-made template, {mode} mode, medians of {settings['repeat']}")
    print(f"requirements: {settings['requirements'].strip().replace(chr(10), ', ')}")
    layer = settings["dependency_layer_mb"]
    print(f"release rows: a job with a {layer} MB dependency layer; there, the baseline column is the limit")
    print(f"machine: {results['machine']}\n")
    print(report.table(results))
    print(f"\n{output.relative_to(ROOT)} holds every number.")
    if mode == "full":  # the README shows the full run only; a quick run is a check that the bench works
        readme = ROOT / "README.md"
        readme.write_text(report.with_table(readme.read_text(), results))
        print("README.md's Performance section now shows this table.")


if __name__ == "__main__":
    main()
