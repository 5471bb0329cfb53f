"""Each tool's version is pinned once (confiance_job.rules.TOOLS): the job repos get it rendered,
and the template's own pins agree with it, so that CI, the commit checks and `make lint` run the
same ruff, and a newer one never fails CI on code the commit checks accepted."""

import re

from confiance_job.rules import TOOLS
from support import ROOT
from support.template import bake

PIN = re.compile(r"""["']?([A-Za-z0-9_.-]+)\s*(==|>=|<=|~=|<|>)\s*([^\s"',;#\]]+)""")


def pins(text):
    """{tool: (operator, version)} of the TOOLS named in a requirements, YAML or Dockerfile text."""
    return {name.lower(): (op, version) for name, op, version in PIN.findall(text) if name.lower() in TOOLS}


def test_the_job_repo_pins_each_tool_as_the_platform_does(tmp_path):
    repo = bake(tmp_path)
    found = {}
    for name in ("requirements-dev.txt", ".pre-commit-config.yaml", "Dockerfile"):
        for tool, pin in pins((repo / name).read_text()).items():
            assert pin == ("==", TOOLS[tool]), f"{name}: {tool}{''.join(pin)}"
            found.setdefault(tool, []).append(name)
    assert set(found) == {"ruff", "pytest", "pre-commit", "pre-commit-hooks", "cruft", "uv", "kubernetes-validate"}
    assert sorted(found["ruff"]) == [".pre-commit-config.yaml", "requirements-dev.txt"]  # commit checks = CI's


def test_the_templates_own_pins_agree():
    own = pins((ROOT / "requirements-dev.txt").read_text())
    assert own and all(pin == ("==", TOOLS[tool]) for tool, pin in own.items()), own
    ci = pins((ROOT / ".gitlab-ci.yml").read_text())
    assert ci == {"pytest": ("==", TOOLS["pytest"])}
