"""Tests of the forecasting code: features, the three steps offline, and the MLflow run they share."""

import pandas as pd
import pytest

import main


@pytest.fixture(autouse=True)
def no_tracking_server(monkeypatch):
    """Tests run offline unless one says otherwise."""
    for name in ["MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "RUN_DIR", "RUN_ID", "DATA_DIR"]:
        monkeypatch.delenv(name, raising=False)


def run_steps(data_dir, run_id="manual__test", *options):
    return [main.main([step, "--data-dir", str(data_dir), "--run-id", run_id, *options]) for step in main.STEPS]


def test_the_features_hold_every_lag_and_no_gap(tmp_path):
    history = main.load_history(tmp_path)
    features = main.make_features(history)
    assert len(features) == len(history) - max(main.LAGS)
    assert not features.isna().any().any()
    row = features.iloc[0]
    assert row["lag_24"] == history.set_index("timestamp")["demand"][features.index[0] - pd.Timedelta(hours=24)]


def test_the_synthetic_history_is_the_same_every_time(tmp_path):
    pd.testing.assert_frame_equal(main.load_history(tmp_path), main.load_history(tmp_path))


def test_a_history_in_the_data_folder_is_used(tmp_path):
    hours = pd.date_range("2026-03-01", periods=400, freq="h")
    pd.DataFrame({"timestamp": hours, "demand": range(400)}).to_csv(tmp_path / "sensors.csv", index=False)
    assert main.main(["prepare", "--data-dir", str(tmp_path), "--run-id", "csv"]) == 0
    features = pd.read_csv(tmp_path / "runs" / "csv" / "features.csv")
    assert len(features) == 400 - max(main.LAGS) and features["demand"].iloc[0] == max(main.LAGS)


def test_offline_the_forecast_of_the_last_week_is_close(tmp_path):
    assert run_steps(tmp_path) == [0, 0, 0]
    forecast = pd.read_csv(tmp_path / "runs" / "manual__test" / "predictions.csv")
    assert len(forecast) == main.TEST_HOURS
    assert (forecast["demand"] - forecast["predicted"]).abs().mean() < 5  # the noise is 1.5


def test_dry_runs_write_nothing_even_before_prepare(tmp_path):
    assert run_steps(tmp_path, "manual__dry", "--dry-run") == [0, 0, 0]
    assert list(tmp_path.iterdir()) == []


def test_predict_without_a_model_says_what_is_missing(tmp_path, capsys):
    assert main.main(["prepare", "--data-dir", str(tmp_path)]) == 0
    assert main.main(["predict", "--data-dir", str(tmp_path)]) == 1
    assert "model.joblib not found" in capsys.readouterr().out


def test_run_ids_with_colons_get_their_own_folder(tmp_path):
    assert main.run_folder("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00%3A00%3A00%2B00%3A00"
    assert main.run_folder(".hidden") == "%2Ehidden"
    assert main.run_folder("a/b") != main.run_folder("a%2Fb")


def test_one_airflow_run_is_one_mlflow_run_even_with_a_retry(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # a local store, no server
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps it for tests like this one
    assert run_steps(tmp_path / "data", "manual__a") == [0, 0, 0]
    assert main.main(["train", "--data-dir", str(tmp_path / "data"), "--run-id", "manual__a"]) == 0  # a retry
    assert run_steps(tmp_path / "data", "manual__b") == [0, 0, 0]
    runs = mlflow.search_runs(experiment_names=["air-liquide-timeseries"], output_format="list")
    assert sorted(run.data.tags["airflow_run_id"] for run in runs) == ["manual__a", "manual__b"]
    assert {"mae", "rmse"} <= set(runs[0].data.metrics)
    assert not (tmp_path / "data" / "runs" / "manual__a" / "model.joblib").exists()  # the model is in MLflow
