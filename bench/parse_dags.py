"""Run inside an Airflow venv: how long Airflow takes to parse DAG files.

python parse_dags.py dagbag FOLDER          -> {"seconds": s, "dags": n, "import_errors": n}
python parse_dags.py import FILE REPEAT     -> {"median_ms": ms} to import the file once,
                                               Airflow and the provider already imported
"""

import importlib.util
import json
import statistics
import sys
import time

from confiance_job.dags import load_dagbag


def warm_imports():
    """Import once what every such DAG imports, so that timings are the DAG files' own cost."""
    import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401
    import kubernetes.client.models  # noqa: F401


def load_folder(folder):
    warm_imports()
    started = time.perf_counter()
    bag = load_dagbag(folder)
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
