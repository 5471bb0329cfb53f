"""Tests of scripts/trigger.py that need no Airflow: how options become the form's values."""

import pytest

import trigger


def conf_of(*argv):
    return trigger.build_conf(trigger.parse_args(list(argv)))


def test_options_become_form_fields():
    conf = conf_of("--tag", "v0.2.0", "--command", "python main.py run", "--env", "EPOCHS=3", "--cpu", "4")
    assert conf == {"image_tag": "0.2.0", "command": "python main.py run", "env": {"EPOCHS": "3"}, "cpu": "4"}


def test_options_win_over_conf():
    assert conf_of("--conf", '{"image_tag": "1.0.0", "memory": "8Gi"}', "--tag", "1.1.0") == {
        "image_tag": "1.1.0",
        "memory": "8Gi",
    }


@pytest.mark.parametrize(
    "argv, message",
    [(["--env", "EPOCHS"], "NAME=VALUE"), (["--conf", "{oops"], "not valid JSON")],
)
def test_bad_options_say_what_is_wrong(argv, message):
    with pytest.raises(trigger.TriggerError, match=message):
        conf_of(*argv)


def test_missing_settings_are_named(monkeypatch, capsys):
    for name in ("AIRFLOW_URL", "AIRFLOW_USER", "AIRFLOW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert trigger.main(["--tag", "0.2.0"]) == 1
    assert "set AIRFLOW_URL, AIRFLOW_USER, AIRFLOW_PASSWORD" in capsys.readouterr().err
