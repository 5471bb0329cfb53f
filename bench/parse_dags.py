"""Run inside an Airflow venv: how long Airflow takes to parse DAG files.

python parse_dags.py dagbag FOLDER          -> {"seconds": s, "dags": n, "import_errors": n}
python parse_dags.py import FILE REPEAT     -> {"median_ms": ms} to import the file once,
                                               Airflow and the provider already imported
"""

import importlib.util
import inspect
import json
import statistics
import sys
import time


def dagbag_class():
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.3+
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag


def warm_imports():
    """Import once what every such DAG imports, so that timings are the DAG files' own cost."""
    import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401
    import kubernetes.client.models  # noqa: F401


def load_folder(folder):
    warm_imports()
    dagbag = dagbag_class()
    options = {"include_examples": False} if "include_examples" in inspect.signature(dagbag).parameters else {}
    started = time.perf_counter()
    bag = dagbag(dag_folder=folder, **options)
    return {"seconds": time.perf_counter() - started, "dags": len(bag.dags), "import_errors": len(bag.import_errors)}


def import_file(path, repeat):
    warm_imports()
    timings = []
    for index in range(repeat + 1):
        spec = importlib.util.spec_from_file_location(f"bench_dag_{index}", path)
        module = importlib.util.module_from_spec(spec)
        started = time.perf_counter()
        spec.loader.exec_module(module)
        timings.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(timings[1:])}  # the first import also warms caches


def main():
    mode, path, *rest = sys.argv[1:]
    result = load_folder(path) if mode == "dagbag" else import_file(path, int(rest[0]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
