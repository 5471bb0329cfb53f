"""Air Liquide TimeSeries: forecast a plant's hourly oxygen demand.

    python main.py prepare   # sensor history -> feature table (RUN_DIR/features.csv)
    python main.py train     # fit the regressor, log params, metrics and model to MLflow
    python main.py predict   # forecast the last week with the model train logged

Add --dry-run to see what a step would do without writing anything.
The history is DATA_DIR/sensors.csv (columns timestamp, demand); without it,
a synthetic one (a daily and a weekly cycle plus noise) so the job runs anywhere.
"""

import argparse
import contextlib
import logging
import os
import sys
import urllib.parse
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

log = logging.getLogger("air-liquide-timeseries")

LAGS = [1, 2, 3, 24, 168]  # hours: the last three, the same hour yesterday and last week
TEST_HOURS = 24 * 7  # the last week is kept for evaluation and forecast
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
PARAMS = {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1, "random_state": 0}


def tracking():
    """MLflow is used only where a tracking server is configured (the DAG sets it; a laptop may not)."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI"))


def load_history(data_dir):
    csv = data_dir / "sensors.csv"
    if csv.exists():
        log.info("reading %s", csv)
        return pd.read_csv(csv, parse_dates=["timestamp"])
    log.info("no %s: using a synthetic history", csv)
    hours = pd.date_range("2026-01-01", periods=24 * 60, freq="h")
    t = np.arange(len(hours))
    noise = np.random.default_rng(42).normal(0, 1.5, len(t))
    demand = 500 + 40 * np.sin(2 * np.pi * t / 24) + 15 * np.sin(2 * np.pi * t / 168) + noise
    return pd.DataFrame({"timestamp": hours, "demand": demand})


def make_features(history):
    table = history.sort_values("timestamp").set_index("timestamp")[["demand"]]
    for lag in LAGS:
        table[f"lag_{lag}"] = table["demand"].shift(lag)
    table["hour"] = table.index.hour
    table["weekday"] = table.index.day_of_week
    return table.dropna()


def read_features(run_dir):
    path = run_dir / "features.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: did the previous step run with the same RUN_DIR?")
    table = pd.read_csv(path, index_col="timestamp", parse_dates=True)
    return table.drop(columns="demand"), table["demand"]


def prepare(settings):
    features = make_features(load_history(settings.data_dir))
    path = settings.run_dir / "features.csv"
    if settings.dry_run:
        log.info("dry run: would write %d rows to %s", len(features), path)
        return
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    features.to_csv(path)
    log.info("wrote %d rows to %s", len(features), path)


def train(settings):
    if settings.dry_run and not (settings.run_dir / "features.csv").exists():
        log.info("dry run: no features in %s yet (prepare has not run): would train on them", settings.run_dir)
        return
    x, y = read_features(settings.run_dir)
    x_train, x_test, y_train, y_test = x[:-TEST_HOURS], x[-TEST_HOURS:], y[:-TEST_HOURS], y[-TEST_HOURS:]
    model = GradientBoostingRegressor(**PARAMS).fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {"mae": mean_absolute_error(y_test, predicted), "rmse": root_mean_squared_error(y_test, predicted)}
    log.info("trained on %d hours, tested on %d: %s", len(x_train), len(x_test), metrics)
    if settings.dry_run:
        log.info("dry run: would save the model")
    elif tracking():
        mlflow.log_params({**PARAMS, "lags": ",".join(map(str, LAGS)), "train_rows": len(x_train)})
        mlflow.log_metrics(metrics)
        # cloudpickle: MLflow's default, skops, is not in mlflow-skinny and refuses tree models without a
        # list of trusted types; only this job loads the model back.
        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
        log.info("model logged to MLflow run %s", mlflow.active_run().info.run_id)
    else:
        joblib.dump(model, settings.run_dir / "model.joblib")
        log.info("no MLflow tracking server: model saved to %s", settings.run_dir / "model.joblib")


def load_model(settings):
    if tracking():
        uri = f"runs:/{mlflow.active_run().info.run_id}/model"
        model = mlflow.sklearn.load_model(uri)
    else:
        path = settings.run_dir / "model.joblib"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: did the previous step run with the same RUN_DIR?")
        uri, model = str(path), joblib.load(path)
    log.info("loaded model %s", uri)
    return model


def predict(settings):
    if settings.dry_run:
        have = (settings.run_dir / "features.csv").exists()
        log.info("dry run: would forecast the last %d hours%s", TEST_HOURS, "" if have else " (no features yet)")
        return
    x, y = read_features(settings.run_dir)
    forecast = pd.DataFrame({"demand": y[-TEST_HOURS:], "predicted": load_model(settings).predict(x[-TEST_HOURS:])})
    path = settings.run_dir / "predictions.csv"
    forecast.to_csv(path)
    mae = (forecast["demand"] - forecast["predicted"]).abs().mean()
    log.info("wrote %d predictions to %s (MAE %.2f)", len(forecast), path, mae)
    if tracking():
        mlflow.log_artifact(str(path))


STEPS = {"prepare": prepare, "train": train, "predict": predict}


# ---- Plumbing: settings and the MLflow run ----


def run_folder(run_id):
    """A folder name per run id, one-to-one: anything but letters, digits, _ . - is %-encoded."""
    folder = urllib.parse.quote(run_id, safe="").replace("~", "%7E")
    return "%2E" + folder[1:] if folder.startswith(".") else folder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "data")))
    parser.add_argument("--run-dir", type=Path, default=os.environ.get("RUN_DIR"))
    parser.add_argument("--run-id", default=os.environ.get("RUN_ID", "local"))
    parser.add_argument("--dry-run", action="store_true", help="write nothing, log nothing to MLflow")
    settings = parser.parse_args(argv)
    settings.run_dir = settings.run_dir or settings.data_dir / "runs" / run_folder(settings.run_id)
    settings.image_tag = os.environ.get("IMAGE_TAG", "dev")
    return settings


@contextlib.contextmanager
def mlflow_run(settings):
    """One Airflow run = one MLflow run: each step, and each retry, reopens the run tagged with RUN_ID."""
    if not tracking() or settings.dry_run:
        yield None
        return
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "air-liquide-timeseries"))
    found = mlflow.search_runs(filter_string=f"tags.airflow_run_id = '{settings.run_id}'", output_format="list")
    if found:
        run = mlflow.start_run(run_id=found[0].info.run_id)
    else:
        tags = {"airflow_run_id": settings.run_id, "image_tag": settings.image_tag}
        run = mlflow.start_run(run_name=settings.run_id, tags=tags)
    with run:
        yield run


def main(argv=None):
    settings = parse_args(argv)
    # stdout is the pod's log in Airflow; force: each call (tests call main() often) logs to the current stdout
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format=LOG_FORMAT, force=True)
    mode = " (dry run)" if settings.dry_run else ""
    log.info("%s of run %s%s, run dir %s", settings.step, settings.run_id, mode, settings.run_dir)
    try:
        with mlflow_run(settings):
            STEPS[settings.step](settings)
    except Exception:
        log.exception("%s failed", settings.step)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
