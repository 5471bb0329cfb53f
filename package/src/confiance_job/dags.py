"""Load a DAG file as Airflow's scheduler does, without a cluster or a database."""

import inspect
import os
import tempfile


class DagError(Exception):
    """The DAG file does not give exactly the one DAG expected: the message says why."""


def prepare_environment():
    """Point Airflow at throw-away settings, before it is first imported."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="confiance-job-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("AIRFLOW_CONN_KUBERNETES_DEFAULT", '{"conn_type": "kubernetes"}')


def load_dagbag(path):
    """Parse a DAG file or folder as Airflow's scheduler does (Airflow 2.10+ and 3.x)."""
    prepare_environment()
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.3+
    except ImportError:
        from airflow.models.dagbag import DagBag
    options = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    return DagBag(dag_folder=str(path), **options)


def load_dag(path, dag_id=None):
    """The one DAG a file defines (with this id, if given); DagError with Airflow's own message otherwise."""
    dagbag = load_dagbag(path)
    if dagbag.import_errors:
        raise DagError("".join(dagbag.import_errors.values()))
    ids = sorted(dagbag.dags)
    if len(ids) != 1 or (dag_id and ids != [dag_id]):
        expected = dag_id or "one DAG"
        raise DagError(f"the file defines the DAGs {ids}; expected exactly one: {expected}")
    return dagbag.dags[ids[0]]
