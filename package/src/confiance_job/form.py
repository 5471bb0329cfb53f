"""The Trigger form's values, checked and explained as a person reads them.

Airflow checks a run's conf against each Param's JSON schema and, when it refuses,
prints the whole schema. These functions check the same schemas (the subset the
generated DAGs use: type, enum, bounds, pattern, additionalProperties, propertyNames,
items and their count) and say,
for each bad field, what is wrong and what a valid value looks like.
"""

import json
import re

from .rules import SWEEP_MAX, form_rule, image_tag

JSON_TYPES = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def has_type(value, types):
    if is_number(value):
        return "number" in types or ("integer" in types and float(value).is_integer())
    return any(isinstance(value, JSON_TYPES[name]) for name in types if name in JSON_TYPES)


def types_of(schema):
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) else list(kind or [])


def as_form_sends_it(conf, schemas):
    """The conf as the form would send it. A number typed in a text field is sent as text (4 -> "4"),
    and a release tag in the image tag field names its image (v0.2.0 -> 0.2.0): `make render` and
    `make trigger` accept what a person would type in the form."""
    conf = dict(conf)
    for field, value in conf.items():
        types = types_of(schemas.get(field, {}))
        if is_number(value) and "string" in types and not {"number", "integer"} & set(types):
            conf[field] = format(value, "g") if isinstance(value, float) else str(value)
    if isinstance(conf.get("image_tag"), str):
        conf["image_tag"] = image_tag(conf["image_tag"])
    return conf


def example_of(field):
    return " or ".join(json.dumps(example) for example in (form_rule(field) or ("", []))[1])


def names_problem(value, schema):
    """What is wrong with the names of a JSON object's keys: not variable names, or names the run sets."""
    rule = schema.get("propertyNames", {})
    bad_names = [name for name in value if "pattern" in rule and not re.search(rule["pattern"], name)]
    if bad_names:
        return f"{', '.join(map(json.dumps, bad_names))}: not a variable name (letters, digits, _)"
    taken = [name for name in value if name in rule.get("not", {}).get("enum", [])]
    if taken:
        return f"{', '.join(map(json.dumps, taken))}: set by the run, pick another name"
    return None


def list_problem(field, value, schema):
    """What is wrong with a list (a sweep): its length, or its first bad item."""
    if len(value) < schema.get("minItems", 0):
        return "an empty list runs nothing: leave the field empty to run the step once"
    if len(value) > schema.get("maxItems", len(value)):
        limit = "the platform's limit on pods per step" if schema["maxItems"] == SWEEP_MAX else "the limit"
        return f"{len(value)} items, more than {schema['maxItems']} ({limit})"
    for number, item in enumerate(value, start=1):
        problem = field_problem(field, item, schema.get("items") or {})
        if problem:
            return f"item {number} {json.dumps(item)}: {problem}"
    return None


def field_problem(field, value, schema):
    """What is wrong with one field's value, in a sentence; None if the schema accepts it."""
    types, title = types_of(schema), schema.get("title") or field
    if types and not has_type(value, types):
        names = {"string": "text", "object": "a JSON object", "null": "empty", "array": "a list"}
        wanted = " or ".join(names.get(kind, kind) for kind in types)
        return f"must be {wanted}, not {json.dumps(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{json.dumps(value)} is not one of " + ", ".join(map(json.dumps, schema["enum"]))
    for bound, broken, says in (("minimum", float.__lt__, "at least"), ("maximum", float.__gt__, "at most")):
        if bound in schema and is_number(value) and broken(float(value), float(schema[bound])):
            return f"{json.dumps(value)} is not {says} {schema[bound]}"
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        rule = form_rule(field)[0] if form_rule(field) else f"a valid {title.lower()}"
        return f"{json.dumps(value)} is not {rule}"
    if isinstance(value, list):
        return list_problem(field, value, schema)
    if isinstance(value, dict):
        problem = names_problem(value, schema)
        if problem:
            return problem
        item_types = types_of(schema.get("additionalProperties") or {})
        bad_values = [name for name, item in value.items() if item_types and not has_type(item, item_types)]
        if bad_values:
            shown = ", ".join(f'"{name}": {json.dumps(value[name])}' for name in bad_values)
            return f"every value must be text: {shown}"
    return None


def form_problems(conf, schemas):
    """One line per bad field of the conf: the field, what is wrong, a valid example."""
    if not isinstance(conf, dict):
        return ['the form values must be a JSON object, e.g. {"image_tag": "0.2.0"}']
    problems = []
    unknown = sorted(set(conf) - set(schemas))
    if unknown:  # Airflow accepts unknown fields silently: a typo would go unnoticed
        problems.append(f"the form has no field {', '.join(unknown)}; it has: {', '.join(sorted(schemas))}")
    for field, schema in schemas.items():
        if field not in conf:
            continue
        problem = field_problem(field, conf[field], schema)
        if problem:
            example = example_of(field)
            problems.append(f"{field}: {problem}" + (f". For example: {example}" if example else ""))
    return problems
