"""Every combination of options bakes a complete, clean job repo."""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from confiance_job.rules import AIRFLOW_PROVIDERS, SHARED_CI_VERSION
from support import ROOT
from support.commands import run
from support.gitlab import GitLabLoader, component
from support.matrix import COMBINATIONS, OPTIONS, find
from support.template import DEFAULTS, bake

COMMON_FILES = {
    ".cruft.json",
    ".dockerignore",
    ".gitignore",
    ".gitlab-ci.yml",
    ".pre-commit-config.yaml",
    "Dockerfile",
    "Makefile",
    "README.md",
    "main.py",
    "pyproject.toml",
    "requirements-dev.txt",
    "requirements.txt",
    "tests/conftest.py",
    "tests/test_dag.py",
    "tests/test_main.py",
}
TEMPLATE_TAG = re.compile(r"{{|{%|{#")
# The only templates left on purpose: Airflow fills these in at run time.
AIRFLOW_TEMPLATES = {'"{{ params.%s or %r }}"', '":{{ params.image_tag }}"'}


def generated_files(repo):
    return {str(path.relative_to(repo)) for path in repo.rglob("*") if path.is_file()}


def dag_file(combo):
    return f"dags/{combo.context['project_slug']}.py"


def test_the_matrix_bakes_the_defaults_and_every_option_value():
    assert COMBINATIONS[0].context == DEFAULTS  # what `cookiecutter --no-input` gives
    baked_values = {(option, value) for combo in COMBINATIONS for option, value in combo.properties.items()}
    assert baked_values == {(option, value) for option, values in OPTIONS.items() for value in values}


@pytest.mark.parametrize("combo", COMBINATIONS)
def test_the_exact_file_set_is_generated(baked, combo):
    expected = COMMON_FILES | {dag_file(combo)}
    if combo.context["extra_ca_certificates"]:
        expected.add("certs/README.md")
    assert generated_files(baked[combo.id]) == expected


@pytest.mark.parametrize("combo", COMBINATIONS)
def test_no_template_syntax_is_left_but_airflow_templates(baked, combo):
    for name in generated_files(baked[combo.id]):
        text = (baked[combo.id] / name).read_text()
        for line in text.splitlines():
            if TEMPLATE_TAG.search(line):
                assert name == dag_file(combo) and any(t in line for t in AIRFLOW_TEMPLATES), f"{name}: {line}"


def test_every_generated_repo_is_lint_clean_and_formatted(baked):
    repos = list(baked.values())
    run(["ruff", "check", "--no-cache", *repos])
    run(["ruff", "format", "--check", "--no-cache", *repos])


def test_every_ci_file_is_valid_gitlab_ci(baked):
    ci_files = [repo / ".gitlab-ci.yml" for repo in baked.values()]
    run(["check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", *ci_files])


def test_the_ci_file_includes_the_shared_components_at_the_platforms_version_and_copies_no_job(baked):
    combo = COMBINATIONS[0]  # the defaults
    ci = yaml.load((baked[combo.id] / ".gitlab-ci.yml").read_text(), GitLabLoader)
    project = combo.context["ci_templates_project"]
    names = ["docker-build-nexus", "airflow-dag-sync"]
    assert [include["component"] for include in ci["include"]] == [
        f"$CI_SERVER_FQDN/{project}/{name}@{SHARED_CI_VERSION}" for name in names
    ]
    shared_keys = set()
    for name, include in zip(names, ci["include"], strict=True):
        inputs, jobs = component(name)
        required = {input_name for input_name, spec in inputs.items() if "default" not in spec}
        assert required <= set(include["inputs"]) <= set(inputs), name  # every required input, no unknown one
        for input_name, value in include["inputs"].items():
            if "regex" in inputs[input_name]:  # the template's answers pass the component's own rules
                assert re.search(inputs[input_name]["regex"], str(value)), (input_name, value)
        shared_keys |= set(jobs)
    copied_jobs = (set(ci) & shared_keys) - {"variables", "stages", "default", "workflow"}
    assert copied_jobs == set()


def test_the_job_repos_ci_runs_the_checks_of_make_lint(baked):
    repo = baked[COMBINATIONS[0].id]
    script = yaml.load((repo / ".gitlab-ci.yml").read_text(), GitLabLoader)["test"]["script"]
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", (repo / "Makefile").read_text(), re.M).group(1)
    checks = re.search(r"pre-commit (run --all-files)", lint).group(1)
    assert any(f"pre-commit {checks}" in line for line in script if isinstance(line, str)), script


@pytest.mark.parametrize("version", OPTIONS["airflow_version"])
def test_the_dev_requirements_and_the_ci_check_with_the_airflow_asked(baked, version):
    repo = baked[find(airflow_version=version).id]
    requirements = (repo / "requirements-dev.txt").read_text().splitlines()
    assert f"apache-airflow=={version}" in requirements
    assert f"apache-airflow-providers-cncf-kubernetes=={AIRFLOW_PROVIDERS[version]}" in requirements
    sync = yaml.load((repo / ".gitlab-ci.yml").read_text(), GitLabLoader)["include"][1]
    assert sync["inputs"]["airflow_version"] == version


@pytest.mark.parametrize("combo", COMBINATIONS)
def test_the_dockerfile_keeps_secrets_out_and_installs_dependencies_before_code(baked, combo):
    dockerfile = (baked[combo.id] / "Dockerfile").read_text()
    assert re.search(rf"^FROM {re.escape(combo.context['base_image'])}$", dockerfile, re.M)
    assert "ARG" not in dockerfile and "PASSWORD" not in dockerfile
    assert "--mount=type=secret,id=pip_conf" in dockerfile
    assert dockerfile.index("COPY requirements.txt") < dockerfile.index("pip install") < dockerfile.index("COPY . .")
    assert "# syntax=" not in dockerfile
    assert re.search(r"^USER 1000$", dockerfile, re.M)  # numeric: Kubernetes' runAsNonRoot can check it
    assert ("update-ca-certificates" in dockerfile) == combo.context["extra_ca_certificates"]


def test_the_slug_and_image_are_derived_from_the_name(tmp_path):
    repo = bake(tmp_path, project_name="Air Quality Forecast", docker_registry="nexus.example:5000")
    assert repo.name == "air-quality-forecast"
    dag = (repo / "dags" / "air-quality-forecast.py").read_text()
    assert 'IMAGE = "nexus.example:5000/confiance/air-quality-forecast"' in dag
    assert 'DAG_ID = "air-quality-forecast"' in dag


@pytest.mark.parametrize(
    "name, slug",
    [
        ("Prévision Qualité Air", "prevision-qualite-air"),
        ("My Job!", "my-job"),
        ("Air_Liquide  TimeSeries", "air-liquide-timeseries"),
        ("Œuvre d'Art — Étape 2", "oeuvre-d-art-etape-2"),
        ("A very long project name that goes well beyond forty characters", "a-very-long-project-name-that-goes-well"),
    ],
)
def test_any_name_makes_a_valid_slug(tmp_path, name, slug):
    repo = bake(tmp_path, project_name=name)
    assert repo.name == slug and len(slug) <= 40
    assert (repo / "dags" / f"{slug}.py").is_file()


# Free text exactly as people type it: each must bake into files that compile and parse, text intact.
TRICKY_TEXTS = {
    "accents": "Prévision de la qualité de l'air — été 2026",
    "double-quotes": 'Say "hello" to the "model"',
    "single-quotes": "it's Zoë O'Neil's job",
    "triple-quotes": 'a """docstring""" inside',
    "ends-with-quote": 'ends with a quote"',
    "backslashes": "C:\\data\\new \\n is not a newline \\",
    "newlines": "first line\nsecond line\n\nthird after a blank",
    "markdown": "`code` # not a heading | a pipe * a star",
    "long": "A description that keeps going " * 8,
}


@pytest.mark.parametrize("text", TRICKY_TEXTS.values(), ids=TRICKY_TEXTS.keys())
def test_tricky_free_text_bakes_into_files_that_compile_and_parse(tmp_path, text):
    serving = {"serving": "mlflow", "mlflow_tracking_uri": "https://mlflow.example.org"}  # its DAG too
    repo = bake(tmp_path, project_name="Tricky " + text[:20], description=text, author_name=text, **serving)
    slug = repo.name
    assert (repo / "dags" / f"{slug}-serve.py").is_file()
    for path in repo.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    as_documented = "\n".join(line.rstrip() for line in f"Tricky {text[:20]}: {text}".splitlines())
    main_module = ast.parse((repo / "main.py").read_text())
    assert ast.get_docstring(main_module, clean=False).startswith(as_documented + "\n")
    dag_module = ast.parse((repo / "dags" / f"{slug}.py").read_text())
    assert ast.get_docstring(dag_module, clean=False).startswith(as_documented + "\n")
    literals = {node.value for node in ast.walk(dag_module) if isinstance(node, ast.Constant)}
    assert text in literals  # the DAG's description and owner, intact
    for name in [".gitlab-ci.yml", ".pre-commit-config.yaml"]:
        yaml.load((repo / name).read_text(), GitLabLoader)
    readme = (repo / "README.md").read_text()
    assert readme.splitlines()[0] == "# " + " ".join(f"Tricky {text[:20]}".split())
    assert text in readme
    run(["ruff", "check", "--no-cache", repo])
    run(["ruff", "format", "--check", "--no-cache", repo])


def test_the_cli_bakes_with_defaults_and_prints_next_steps(tmp_path):
    result = run([Path(sys.executable).parent / "cookiecutter", "--no-input", "-o", tmp_path, ROOT])
    assert (tmp_path / "my-job" / "dags" / "my-job.py").is_file()
    assert f"Your job repo is ready in {tmp_path / 'my-job'}\n" in result.stdout  # wherever it was written
    assert "git tag v0.1.0 && git push --tags" in result.stdout
    assert "AIRFLOW_DAGS_TOKEN" in result.stdout


def test_a_tracking_server_reaches_every_step_with_its_credentials_secret_and_the_client(tmp_path):
    repo = bake(tmp_path, project_name="Air Liquide TimeSeries", mlflow_tracking_uri="https://mlflow.example.org")
    dag = (repo / "dags" / "air-liquide-timeseries.py").read_text()
    assert '"MLFLOW_TRACKING_URI": "https://mlflow.example.org",' in dag
    assert '"MLFLOW_EXPERIMENT_NAME": "air-liquide-timeseries",' in dag
    assert 'SECRETS = ["mlflow-credentials"]' in dag  # MLFLOW_TRACKING_USERNAME / _PASSWORD
    assert "mlflow-skinny==" in (repo / "requirements.txt").read_text()
    for ignore_file in (".gitignore", ".dockerignore"):
        assert {"mlruns/", "mlartifacts/", "mlflow.db"} <= set((repo / ignore_file).read_text().split())


def test_without_a_tracking_server_nothing_of_mlflow_is_asked_for(tmp_path):
    repo = bake(tmp_path)
    assert "MLFLOW" not in (repo / "dags" / "my-job.py").read_text()
    assert "mlflow" not in (repo / "requirements.txt").read_text()


def test_a_main_py_without_the_names_the_tests_call_says_which_once(tmp_path):
    repo = bake(tmp_path)
    (repo / "main.py").write_text('def train():\n    print("training")\n\n\ndef main():\n    train()\n')
    pytest_main = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_main.py"]
    tested = run(pytest_main, cwd=repo, check=False)
    assert tested.returncode != 0 and "TypeError" not in tested.stdout
    assert "main.py must keep:" in tested.stdout and "main(argv): runs one step" in tested.stdout
    assert "STEPS = {" in tested.stdout and "parse_args(argv)" in tested.stdout
