"""The bench's table: rows declared as data, each naming where its numbers are in the results, and the
place of the full run's table in README.md."""

import sys
from dataclasses import dataclass

START = "<!-- bench-table:start -->"
END = "<!-- bench-table:end -->"
HEADER = ["| metric | ours | baseline | ours / baseline | goal |", "|---|---|---|---|---|"]


@dataclass(frozen=True)
class Row:
    """One line of the table. `ours` and `baseline` are paths in the results (keys joined by dots);
    on a release row, the baseline column is that release's limit."""

    label: str
    ours: str
    baseline: str | None = None
    goal: str = ""


def side_by_side(label, section, key, goal=""):
    """A row that compares ours with the baseline, both measured the same way."""
    return Row(label, f"{section}.ours.{key}", f"{section}.baseline.{key}", goal)


def dagbag_rows(results):
    """One row per folder size the run loaded."""
    counts = sorted(int(key.split("_")[1]) for key in results["dags"]["ours"] if key.startswith("dagbag_"))
    return [side_by_side(f"DagBag, {count} DAGs (s)", "dags", f"dagbag_{count}_s") for count in counts]


RELEASE_STEPS = ("pipeline_s", "first_built_s", "first_pushed_s", "sync_s", "code_only_built_s", "code_only_pushed_s")


def release_rows(results):
    """Per builder: the steps of its tag pipeline, then its code-only release against that release's limit."""
    rows = []
    for name, release in results["releases"].items():
        where = f"releases.{name}"
        rows += [Row(f"{name}: {step[:-2].replace('_', ' ')} (s)", f"{where}.{step}") for step in RELEASE_STEPS]
        limit = f"a push of the {release['changed_kb']:.0f} kB that changed"
        label = f"{name}: code-only release on a fresh runner (s) vs its limit: {limit}"
        rows.append(Row(label, f"{where}.code_only_release_s", f"{where}.push_only_changed_layer_s"))
    return rows


# The table, in order; a function stands for the rows it makes from the results.
ROWS = [
    side_by_side("code-only rebuild (s)", "images", "code_only_rebuild_s", "ours >= 10x faster (ratio <= 0.1)"),
    side_by_side("first build, cold (s)", "images", "first_build_s", "ratio <= 0.5"),
    side_by_side("requirements change, rebuild (s)", "images", "requirements_change_rebuild_s"),
    side_by_side("image size (MB)", "images", "image_mb", "ratio <= 1"),
    side_by_side("pip password in history/config", "images", "password_in_history_or_config", "ours: no"),
    side_by_side("import one DAG file (ms)", "dags", "import_one_ms"),
    dagbag_rows,
    side_by_side("parse cost per DAG, average (ms)", "dags", "per_dag_ms"),
    side_by_side("parse cost of one more DAG (ms)", "dags", "marginal_per_dag_ms", "ratio <= 1.2"),
    Row("bake, cookiecutter --no-input (s)", "bake.bake_s", goal="< 1 s"),
    release_rows,
]


def rows(results):
    return [made for entry in ROWS for made in (entry(results) if callable(entry) else [entry])]


def value(results, path):
    """The value at `path` in the results; None if the run has none there."""
    for key in path.split("."):
        results = results.get(key) if isinstance(results, dict) else None
    return results


def cell(number):
    if isinstance(number, bool):
        return "yes" if number else "no"
    return "" if number is None else f"{number:.3g}" if isinstance(number, float) else str(number)


def table(results):
    """The table in Markdown. A measurement with no number stops the bench, naming it: an empty cell
    would read as "not measured" or "zero"."""
    lines, unmeasured = list(HEADER), []
    for row in rows(results):
        ours = value(results, row.ours)
        baseline = value(results, row.baseline) if row.baseline else None
        if ours is None or (row.baseline and baseline is None):
            unmeasured.append(row.label)
        numeric = isinstance(ours, (int, float)) and not isinstance(ours, bool)
        ratio = cell(ours / baseline) if numeric and baseline else ""
        lines.append(f"| {row.label} | {cell(ours)} | {cell(baseline)} | {ratio} | {row.goal} |")
    if unmeasured:
        sys.exit(
            f"bench: no number for {'; '.join(unmeasured)} (bench/results/bench-<mode>.json holds what was measured)"
        )
    return "\n".join(lines)


def readme_table(results):
    """What README.md holds between its markers: the table, then the run it comes from."""
    run = f"Measured on {results['date']}, medians of {results['settings']['repeat']}: {results['machine']}."
    return f"{table(results)}\n\n{run}"


def split_at_markers(readme):
    """README.md's text as (up to the start marker, between the markers, from the end marker)."""
    before, start, rest = readme.partition(START)
    between, end, after = rest.partition(END)
    if not (start and end):
        sys.exit(f"bench: README.md has no {START} ... {END} in its Performance section")
    return before + start, between, end + after


def table_in(readme):
    return split_at_markers(readme)[1].strip("\n")


def with_table(readme, results):
    """README.md's text with this run's table between the markers."""
    before, _, after = split_at_markers(readme)
    return f"{before}\n{readme_table(results)}\n{after}"
