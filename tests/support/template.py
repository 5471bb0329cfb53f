"""Baking job repos from this checkout of the template, and the answers a bake uses."""

import shutil
import sys
from pathlib import Path

from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

from support import ROOT


def bake(output_dir, **answers):
    """Generate a job repo with cookiecutter's API; returns its folder."""
    return Path(cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def answers_with_defaults(answers):
    """Every answer cookiecutter uses for these: them, and cookiecutter.json's defaults rendered as a bake does."""
    sys.path.insert(0, str(ROOT))  # the template's Jinja extensions, which the defaults use
    try:
        context = generate_context(str(ROOT / "cookiecutter.json"), extra_context=answers)
        return dict(prompt_for_config(context, no_input=True))
    finally:
        sys.path.remove(str(ROOT))


DEFAULTS = answers_with_defaults({})


def edit(path, old, new):
    """Replace `old` by `new` in a file, as a person editing it would; `old` must be there."""
    text = path.read_text()
    assert old in text, f"{path.name} no longer has {old!r}: the test needs updating"
    path.write_text(text.replace(old, new))


def with_short_retry_delay(dag_text):
    """A generated DAG retrying a failed step after 1 s instead of 2 min: a run that fails ends in seconds."""
    assert "timedelta(minutes=2)" in dag_text, "the generated DAG's retry delay changed"
    return dag_text.replace("timedelta(minutes=2)", "timedelta(seconds=1)")


# The template's files copied elsewhere (to make it a git repository of its own).


def copy_template(files, folder):
    for path in files:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, folder / path)
    return folder
