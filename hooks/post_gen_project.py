"""Remove what the answers switched off, record where the template came from, then say what to do next."""

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SLUG = "{{ cookiecutter.project_slug }}"
IMAGE = "{{ cookiecutter.__image }}"
TEMPLATES_PROJECT = "{{ cookiecutter.ci_templates_project }}"
CONTEXT = json.loads({{ cookiecutter | jsonify | tojson }})
TEMPLATE_DIR = {{ template_dir | tojson }}

# cruft (create, update) renders the template itself, sets _commit and writes .cruft.json on its own.
MADE_BY_CRUFT = "_commit" in CONTEXT
# Files `cruft update` leaves alone: they are the user's from the first commit. main.py too: once the user's
# code replaces the example, a changed steps answer rewrites the same lines and git's merge leaves conflict
# markers in it. The job repo's tests name what main.py lacks instead (a step the DAG runs, for example).
CRUFT_SKIP = ["main.py", "requirements.txt", "tests/test_main.py"]
# What cookiecutter knows of this one run (local paths, the --checkout option): cruft keeps none of it in the context.
RUN_ONLY_KEYS = {"_output_dir", "_repo_dir", "_checkout"}


def remove_extra_ca_certificates():
    shutil.rmtree("certs")


def remove_serving():
    Path(f"dags/{SLUG}-serve.py").unlink()
    Path("tests/test_serving.py").unlink()


def git(*args):
    """Output of git in the template's folder; None when git or the repository is missing, or git fails."""
    try:
        result = subprocess.run(
            ["git", "--no-optional-locks", "-C", TEMPLATE_DIR, *args], capture_output=True, text=True
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def without_credentials(url):
    """The URL without user:password@: a token must never land in a committed file."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return url


def template_source():
    """Where cruft finds this template again: {url, commit, directory, dirty}; None if it is not a git checkout."""
    if git("ls-files", "--error-unmatch", "cookiecutter.json") is None:  # a plain copy, or not tracked by git
        return None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    # The clone's origin when it has the commit (cookiecutter gh:..., or a pushed clone): CI and teammates reach it.
    # Otherwise the local repository, which only this machine reaches.
    origin = git("config", "--get", "remote.origin.url")
    published = origin and git("branch", "--remotes", "--contains", "HEAD")
    return {
        "url": without_credentials(origin) if published else git("rev-parse", "--show-toplevel"),
        "commit": commit,
        "directory": git("rev-parse", "--show-prefix").rstrip("/") or None,  # a template in a sub-folder
        "dirty": bool(git("status", "--porcelain", "--", ".", *outside_this_repo())),
    }


def outside_this_repo():
    """A git pathspec leaving out the new repo when it was made inside the template (make job): not a change."""
    template, here = Path(TEMPLATE_DIR).resolve(), Path.cwd().resolve()
    return [f":(exclude){here.relative_to(template)}"] if here.is_relative_to(template) else []


def answers_in_template_order():
    """The answers in cookiecutter.json's order, as cruft writes them (the context reaches this hook sorted)."""
    order = list(json.loads((Path(TEMPLATE_DIR) / "cookiecutter.json").read_text(encoding="utf-8")))
    answers = [(key, value) for key, value in CONTEXT.items() if key not in RUN_ONLY_KEYS | {"_template"}]
    return dict(sorted(answers, key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def write_cruft_file(source):
    """.cruft.json as `cruft create` writes it, so that `cruft check` and `cruft update` work in this repo."""
    answers = {**answers_in_template_order(), "_template": source["url"], "_commit": source["commit"]}
    state = {
        "template": source["url"],
        "commit": source["commit"],
        "checkout": CONTEXT.get("_checkout"),
        "context": {"cookiecutter": answers},
        "directory": source["directory"],
        "skip": CRUFT_SKIP,
    }
    text = json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n"
    Path(".cruft.json").write_text(text, encoding="utf-8")


def updates_step(source):
    """The step about template updates: how to take them, or why they are off and how to turn them on."""
    if source is None:
        return f"""  6. Template updates are off: {TEMPLATE_DIR} is not a git checkout (or git is missing),
     so nothing says which version of the template made this repo. To turn them on, generate from
     the template's git repository (cookiecutter gh:org/confiance-job, or a clone), or link this repo to it:
       cd {SLUG} && make dev && .venv/bin/cruft link <git URL of the template>  (asks the questions again)"""
    step = "  6. Later, take the template's improvements:  .venv/bin/cruft update  (README: Update from the template)"
    if source["dirty"]:
        step += f"""
     Note: the template had uncommitted changes; .cruft.json records its last commit,
     {source["commit"][:12]}, so the first `cruft update` may find those changes already here."""
    return step


def print_next_steps(source):
    print(f"""
Your job repo is ready in {Path.cwd()}

Next steps:
  1. Follow its README's "First day": your Nexus credentials for pip, then
       cd {Path.cwd()} && git init -b main && git add . && make dev && make test
     Put your code in main.py (one function per step) and your packages in requirements.txt.
  2. Create an empty GitLab project and push:
       git commit -m "Start {SLUG}"
       git remote add origin <your GitLab project URL> && git push -u origin main
  3. In GitLab > Settings > CI/CD > Variables, add (masked, protected):
       NEXUS_USER, NEXUS_PASSWORD  (push to Nexus, install from the Nexus PyPI)
       AIRFLOW_DAGS_TOKEN          (project access token of the airflow-dags repo, write_repository)
     and protect the tags v*  (Settings > Repository > Protected tags).
  4. Release:  git tag v{{ cookiecutter.version }} && git push --tags
     CI pushes {IMAGE}:{{ cookiecutter.version }} and syncs dags/{SLUG}.py to Airflow.
  5. In Airflow, open the DAG '{SLUG}' and press Trigger.
{updates_step(source)}{serving_step()}
  The shared CI jobs come from the GitLab project {TEMPLATES_PROJECT}.
""")


def serving_step():
    """The step about the serving DAG, when the answers made one."""
    if "{{ cookiecutter.serving }}" == "none":
        return ""
    return f"""
  7. Serve a trained model at https://{{ cookiecutter.serving_host }}/invocations: release, then
       make serve MODEL=runs:/<run id>/model  (the DAG {SLUG}-serve; README: Serve the model)"""


def main():
    if not {{ cookiecutter.extra_ca_certificates }}:
        remove_extra_ca_certificates()
    if "{{ cookiecutter.serving }}" == "none":
        remove_serving()
    if MADE_BY_CRUFT:  # a `cruft update` rendering two versions to compare: nothing to record or say
        return
    source = template_source()
    if source:
        write_cruft_file(source)
    print_next_steps(source)


main()
