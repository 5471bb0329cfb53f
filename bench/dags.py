"""Both DAG files parsed by Airflow: one file imported, then folders of copies loaded as a DagBag."""

import json

from measuring import BASELINE, bake, median
from support import ROOT
from support.commands import run

PARSE_DAGS = ROOT / "bench" / "parse_dags.py"


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
