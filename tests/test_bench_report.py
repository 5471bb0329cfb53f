"""README.md's performance table is what the bench's report makes of the full run's results, so that
neither is edited by hand; a measurement with no number stops the bench, naming it."""

import importlib.util
import json

import pytest
from support import ROOT

RESULTS = ROOT / "bench" / "results" / "bench-full.json"


def bench_module(name):
    """A module of bench/, by its path: bench/ is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = bench_module("report")


def test_the_readme_table_is_the_full_runs():
    results = json.loads(RESULTS.read_text())
    assert report.table_in((ROOT / "README.md").read_text()) == report.readme_table(results)


@pytest.mark.parametrize(
    "path, label",
    [
        ("releases.docker.sync_s", "docker: sync (s)"),  # a job time the pipeline gave none of
        ("dags.baseline.marginal_per_dag_ms", "parse cost of one more DAG (ms)"),  # the compared number
    ],
)
def test_a_measurement_with_no_number_stops_the_bench_and_names_it(path, label):
    results = json.loads(RESULTS.read_text())
    *parents, key = path.split(".")
    measured = results
    for parent in parents:
        measured = measured[parent]
    del measured[key]
    with pytest.raises(SystemExit) as stopped:
        report.table(results)
    assert str(stopped.value).startswith(f"bench: no number for {label} ("), stopped.value  # that one only
