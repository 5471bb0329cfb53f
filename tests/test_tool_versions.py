"""Each tool's version is pinned once (confiance_job.rules.TOOLS): the job repos get it rendered,
and the template's own pins agree with it, so that CI, the commit checks and `make lint` run the
same ruff, and a newer one never fails CI on code the commit checks accepted."""

import re

from confiance_job.rules import TOOLS
from support import ROOT
from support.gitlab import git
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


def test_the_template_takes_its_own_tools_from_the_same_pins():
    assert "-c package/src/confiance_job/tools.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert pins((ROOT / "requirements-dev.txt").read_text()) == {}  # named there, pinned in tools.txt only
    ci = (ROOT / ".gitlab-ci.yml").read_text()
    assert pins(ci) == {} and 'TOOL_PINS: "$PACKAGE_DIR/src/confiance_job/tools.txt"' in ci
    assert ci.count('--constraint "$TOOL_PINS"') == 2  # the test job's pytest, the publish job's build and twine


def test_each_tool_version_is_written_in_one_file():
    files = git("ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).splitlines()  # what a clone has
    for tool, version in TOOLS.items():
        holders = [
            path
            for path in files
            if (ROOT / path).is_file() and f"{tool}=={version}" in (ROOT / path).read_text(errors="ignore")
        ]
        assert holders == ["package/src/confiance_job/tools.txt"], tool
