"""The Trigger form's values, as `make render` and `make trigger` check them: one line per bad field,
saying what is wrong and what a valid value looks like; what a person types in the form is accepted."""

import pytest
from confiance_job.form import as_form_sends_it, form_problems
from confiance_job.rules import ENV_NAME_PATTERN, IMAGE_TAG_PATTERN, QUANTITY_PATTERN, image_tag

# The schemas of a generated DAG's form fields, as Airflow serves them.
SCHEMAS = {
    "image_tag": {"type": "string", "pattern": IMAGE_TAG_PATTERN, "title": "Image tag"},
    "command": {"type": ["null", "string"], "title": "Command"},
    "env": {
        "type": ["null", "object"],
        "additionalProperties": {"type": "string"},
        "propertyNames": {"pattern": ENV_NAME_PATTERN},
        "title": "Extra environment variables",
    },
    "cpu": {"type": ["null", "string"], "pattern": QUANTITY_PATTERN, "title": "CPU"},
    "memory": {"type": ["null", "string"], "pattern": QUANTITY_PATTERN, "title": "Memory"},
}


def problems(conf):
    return form_problems(as_form_sends_it(conf, SCHEMAS), SCHEMAS)


@pytest.mark.parametrize(
    "conf, problem",
    [
        ({"memory": "8 GB"}, 'memory: "8 GB" is not a Kubernetes quantity. For example: "16Gi" or "512Mi"'),
        ({"cpu": "two"}, 'cpu: "two" is not a Kubernetes quantity. For example: "4" or "500m"'),
        ({"cpu": True}, 'cpu: must be empty or text, not true. For example: "4" or "500m"'),
        ({"image_tag": "latest tag"}, 'image_tag: "latest tag" is not an image tag: letters, digits'),
        ({"image_tag": ""}, 'image_tag: "" is not an image tag'),
        ({"env": {"EPOCHS": 3}}, 'env: every value must be text: "EPOCHS": 3. For example: {"EPOCHS": "3"}'),
        ({"env": {"1BAD": "x"}}, 'env: "1BAD": not a variable name (letters, digits, _)'),
        ({"env": ["EPOCHS=3"]}, 'env: must be empty or a JSON object, not ["EPOCHS=3"]'),
        ({"imagetag": "0.2.0"}, "the form has no field imagetag; it has: command, cpu, env, image_tag, memory"),
    ],
    ids=["memory", "cpu", "cpu-bool", "tag-space", "tag-empty", "env-number", "env-name", "env-list", "typo"],
)
def test_a_bad_value_gives_the_field_what_is_wrong_and_an_example(conf, problem):
    [line] = problems(conf)
    assert line.startswith(problem)
    assert "^" not in line and "schema" not in line  # never the pattern or a schema dump


def test_every_bad_field_is_reported_at_once():
    assert len(problems({"cpu": "x", "memory": "y", "image_tag": "a b"})) == 3


@pytest.mark.parametrize("number, text", [(4, "4"), (0.5, "0.5"), (2.0, "2")])
def test_a_number_for_cpu_is_taken_as_the_form_sends_what_is_typed_in_it(number, text):
    assert as_form_sends_it({"cpu": number}, SCHEMAS) == {"cpu": text}
    assert problems({"cpu": number}) == []


def test_a_number_is_never_turned_into_text_where_the_form_takes_json():
    assert problems({"env": {"EPOCHS": 3}}) != []  # the env field is JSON: Airflow refuses a number there too


@pytest.mark.parametrize(
    "typed, tag",
    [
        ("v0.2.0", "0.2.0"),
        ("v1.0.0-rc.1", "1.0.0-rc.1"),
        ("0.2.0", "0.2.0"),
        ("dev-1a2b3c4", "dev-1a2b3c4"),
        ("vendor", "vendor"),
    ],
)
def test_the_git_tag_names_its_image_everywhere(typed, tag):
    assert image_tag(typed) == tag
    assert as_form_sends_it({"image_tag": typed}, SCHEMAS) == {"image_tag": tag}


def test_the_form_itself_refuses_the_git_tag_an_image_never_has():
    import re

    assert not re.search(IMAGE_TAG_PATTERN, "v0.2.0")
    assert all(re.search(IMAGE_TAG_PATTERN, tag) for tag in ("0.2.0", "1.0.0-rc.1", "dev-1a2b3c4", "latest", "v2"))


SERVING_SCHEMAS = {
    "action": {"enum": ["deploy", "stop"], "title": "Action"},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "title": "Replicas"},
}


@pytest.mark.parametrize(
    "conf, problem",
    [
        ({"action": "restart"}, 'action: "restart" is not one of "deploy", "stop"'),
        ({"replicas": 0}, "replicas: 0 is not at least 1"),
        ({"replicas": 11}, "replicas: 11 is not at most 10"),
    ],
)
def test_a_choice_or_a_number_out_of_bounds_says_what_the_form_accepts(conf, problem):
    assert form_problems(conf, SERVING_SCHEMAS) == [problem]
    assert form_problems({"action": "stop", "replicas": 10}, SERVING_SCHEMAS) == []


SWEEP = {
    "type": ["null", "array"],
    "minItems": 1,
    "maxItems": 1024,
    "items": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "propertyNames": {"pattern": ENV_NAME_PATTERN, "not": {"enum": ["RUN_DIR", "SWEEP_INDEX"]}},
    },
    "title": "Sweep of step train",
}


@pytest.mark.parametrize(
    "sweep, problem",
    [
        ({"LR": "0.1"}, 'must be empty or a list, not {"LR": "0.1"}'),
        ([], "an empty list runs nothing: leave the field empty to run the step once"),
        ([{"LR": "1"}] * 1025, "1025 items, more than 1024 (the platform's limit on pods per step)"),
        (["LR=0.1"], 'item 1 "LR=0.1": must be a JSON object, not "LR=0.1"'),
        ([{"LR": "1"}, {"LR": 0.1}], 'item 2 {"LR": 0.1}: every value must be text: "LR": 0.1'),
        ([{"max-depth": "3"}], 'item 1 {"max-depth": "3"}: "max-depth": not a variable name'),
        ([{"SWEEP_INDEX": "3"}], 'item 1 {"SWEEP_INDEX": "3"}: "SWEEP_INDEX": set by the run, pick another name'),
    ],
    ids=["object", "empty", "too-long", "text-item", "number", "bad-name", "run-name"],
)
def test_a_bad_sweep_says_which_item_and_why_with_an_example(sweep, problem):
    (said,) = form_problems({"train_sweep": sweep}, {"train_sweep": SWEEP})
    assert said.startswith(f"train_sweep: {problem}"), said
    assert said.endswith('. For example: [{"LR": "0.1"}, {"LR": "0.01"}]')


def test_a_good_sweep_or_none_passes():
    assert form_problems({"train_sweep": [{"LR": "0.1"}, {}]}, {"train_sweep": SWEEP}) == []
    assert form_problems({"train_sweep": None}, {"train_sweep": SWEEP}) == []
