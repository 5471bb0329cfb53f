"""How trigger options become the Trigger form's values, and the mistakes caught before Airflow sees them."""

import pytest
from confiance_job.cli import main
from confiance_job.trigger import TriggerError, build_conf, checked_form


def test_options_become_form_fields():
    conf = build_conf(tag="v0.2.0", command="python main.py run", env=["EPOCHS=3"], cpu="4")
    assert conf == {"image_tag": "0.2.0", "command": "python main.py run", "env": {"EPOCHS": "3"}, "cpu": "4"}


def test_options_win_over_conf():
    conf = build_conf('{"image_tag": "1.0.0", "memory": "8Gi", "env": {"A": "1"}}', tag="1.1.0", env=["B=x=y"])
    assert conf == {"image_tag": "1.1.0", "memory": "8Gi", "env": {"A": "1", "B": "x=y"}}


@pytest.mark.parametrize(
    "arguments, message", [({"env": ["EPOCHS"]}, "NAME=VALUE"), ({"conf_json": "{oops"}, "valid JSON")]
)
def test_bad_options_say_what_is_wrong(arguments, message):
    with pytest.raises(TriggerError, match=message):
        build_conf(**arguments)


def test_a_misspelt_field_is_caught():
    with pytest.raises(TriggerError, match="the form has no field image-tag; it has: cpu, env, image_tag"):
        checked_form({"image-tag": "0.1.0"}, {"image_tag": {}, "env": {}, "cpu": {}})


def test_command_on_a_job_of_several_steps_says_which_field_to_use():
    fields = {"image_tag": {}, "prepare_command": {}, "train_command": {}}
    with pytest.raises(TriggerError, match=r"several steps: .*--conf '\{\"prepare_command\": \"echo hi\"\}'"):
        checked_form({"command": "echo hi"}, fields)
    assert checked_form({"train_command": "echo hi", "image_tag": "v1.0.0"}, fields) == {
        "train_command": "echo hi",
        "image_tag": "1.0.0",
    }


def test_missing_settings_are_named(monkeypatch, capsys):
    for name in ("AIRFLOW_URL", "AIRFLOW_USER", "AIRFLOW_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["trigger", "--tag", "0.2.0", "--dag-id", "my-job"]) == 1
    assert "trigger: set AIRFLOW_URL, AIRFLOW_USER, AIRFLOW_PASSWORD" in capsys.readouterr().err


def test_an_unreachable_airflow_is_named(monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AIRFLOW_USER", "me")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "secret")
    assert main(["trigger", "--dag-id", "my-job"]) == 1
    assert "cannot reach Airflow at http://127.0.0.1:1/auth/token" in capsys.readouterr().err
