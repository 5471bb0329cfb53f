"""What every measurement uses: a bake of the template, a timer, a median."""

import statistics
import sys
import time
from pathlib import Path

from support import ROOT
from support.commands import run

BASELINE = ROOT / "bench" / "baseline"
# Both images start from it: the local python image plus this network's CA certificates (images.py).
BENCH_BASE = "bench-base:latest"


def bake(folder, **answers):
    """cookiecutter's own CLI, its output kept out of the report."""
    cookiecutter = Path(sys.executable).parent / "cookiecutter"
    options = [f"{name}={value}" for name, value in answers.items()]
    run([cookiecutter, "--no-input", "-o", folder, ROOT, *options])
    return folder / "my-job"


def measure_bake(folder, repeat):
    return {"bake_s": median([timed(bake, folder / f"bake-{i}") for i in range(max(repeat, 3))])}


def median(values):
    return statistics.median(values) if values else None


def timed(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started
