"""Each tool's version and each rule's pattern is written in one file. Tool versions live in the
package's tools.txt (confiance_job.rules.TOOLS): job repos get them rendered and the template's own
installs take them as constraints, so CI, the commit checks and `make lint` run the same ruff."""

import re

from confiance_job import answers, rules
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


# The shared CI components spell these rules a second time, in YAML for GitLab (test_shared_ci.py holds them equal).
COMPONENT_COPIES = {"VERSION", "DNS_LABEL", "HOST_PORT", "REPOSITORY", "GIT_REF"}


def test_each_rules_pattern_is_written_in_one_file():
    files = git("ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).splitlines()
    texts = {path: (ROOT / path).read_text(errors="ignore") for path in files if (ROOT / path).is_file()}
    patterns = {
        name: value.pattern if isinstance(value, re.Pattern) else value
        for module in (rules, answers)
        for name, value in vars(module).items()
        if isinstance(value, re.Pattern) or name.endswith("_PATTERN")
    }
    for name, pattern in patterns.items():
        holders = [path for path, text in texts.items() if pattern.strip("^$") in text and "ci-templates/" not in path]
        assert len(holders) <= 1, (name, holders)  # an f-string-built one (RELEASE_TAG) is in none
        if name in COMPONENT_COPIES:
            assert any(pattern in text for path, text in texts.items() if path.startswith("ci-templates/")), name
