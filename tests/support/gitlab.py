"""A stand-in for the company GitLab: bare git repositories on disk, reached
through their real https URLs (git insteadOf), and gitlab-ci-local running a
job repo's real .gitlab-ci.yml with the shared jobs included as CI/CD components (`include: component:`).
"""

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from support import ROOT
from support.commands import need, run
from support.engines import DOCKER
from support.template import bake

HOST = "git.irt-systemx.fr"
TEMPLATES_PROJECT = "confianceai/ec_1/fa2_infrastructure/gitlab-ci-pipelines"
DAGS_PROJECT = "confianceai/ec_1/infra/airflow-dags"
JOBS_GROUP = "confianceai/jobs"
CI_TEMPLATES = ROOT / "ci-templates"  # the shared pipelines project's files
GITLAB_CI_LOCAL = shutil.which("gitlab-ci-local")
COMMITTER = ["-c", "user.name=Jane Doe", "-c", "user.email=jane.doe@irt-systemx.fr"]


def need_gitlab_ci_local():
    need(GITLAB_CI_LOCAL, "gitlab-ci-local is not installed (.ci/run installs the version CI uses, with npm)")


def shared_ci_release():
    """The newest release of the shared jobs, as their changelog names it ("## 1.0.0")."""
    return re.search(r"^## (\d+\.\d+\.\d+)$", (CI_TEMPLATES / "CHANGELOG.md").read_text(), re.M).group(1)


def git(*args, cwd=None, env=None):
    return run(["git", *COMMITTER, *args], cwd=cwd, env=env).stdout.strip()


class GitLabLoader(yaml.SafeLoader):
    """Reads GitLab CI YAML, whose !reference tags plain YAML does not know."""


GitLabLoader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


INPUT = re.compile(r"\$\[\[ inputs\.(\w+) \]\]")  # an input's place in a component


def component(name):
    """A shared component (ci-templates/templates/<name>.yml) as (its spec: inputs, its jobs)."""
    spec, jobs = yaml.load_all((CI_TEMPLATES / "templates" / f"{name}.yml").read_text(), GitLabLoader)
    return spec["spec"]["inputs"], jobs


def ci_variables(repo):
    """The variables a job repo's pipeline gets from the components it includes, with its inputs, as GitLab
    interpolates `$[[ inputs.x ]]` (an input not given takes its default)."""
    variables = {}
    for include in yaml.load((repo / ".gitlab-ci.yml").read_text(), GitLabLoader)["include"]:
        inputs, jobs = component(include["component"].rpartition("/")[2].partition("@")[0])
        given = {name: spec.get("default") for name, spec in inputs.items()} | include.get("inputs", {})
        for name, value in jobs.get("variables", {}).items():
            variables[name] = INPUT.sub(lambda match, given=given: str(given[match[1]]), value)
    return variables


@dataclass
class PipelineRun:
    returncode: int
    output: str
    logs: dict  # job name -> its log
    job_seconds: dict  # job name -> wall time gitlab-ci-local reported
    seconds: float


# gitlab-ci-local says "finished in 925 ms", "in 4.2 s" or "in 1.1 min", as the time taken asks.
UNIT_SECONDS = {"ms": 0.001, "s": 1, "min": 60}


class FakeGitLab:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.remotes = self.folder / "remotes"

    @classmethod
    def with_shared_projects(cls, folder):
        """A GitLab holding the shared CI jobs and an airflow-dags repository."""
        gitlab = cls(folder)
        gitlab.publish_ci_templates()
        gitlab.create_dags_repo()
        return gitlab

    def bare_repo(self, project):
        return self.remotes / f"{project}.git"

    def create_project(self, project, files, branch="master"):
        """A bare repository holding these files ({path: text}) on one branch."""
        seed = self.folder / "seed" / project
        seed.mkdir(parents=True)
        for path, text in files.items():
            (seed / path).parent.mkdir(parents=True, exist_ok=True)
            (seed / path).write_text(text)
        git("init", "-q", "-b", branch, cwd=seed)
        git("add", ".", cwd=seed)
        git("commit", "-q", "-m", "Initial commit", cwd=seed)
        self.bare_repo(project).parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--bare", seed, self.bare_repo(project))
        git("config", "receive.advertisePushOptions", "true", cwd=self.bare_repo(project))  # as GitLab does
        shutil.rmtree(seed)

    def publish_ci_templates(self):
        """The shared pipelines project, as the platform team publishes ci-templates/ and releases it
        (ci-templates/README.md): its files at the top, tagged with the newest version of its changelog."""
        files = {
            str(path.relative_to(CI_TEMPLATES)): path.read_text() for path in CI_TEMPLATES.rglob("*") if path.is_file()
        }
        self.create_project(TEMPLATES_PROJECT, files)
        git("tag", shared_ci_release(), "master", cwd=self.bare_repo(TEMPLATES_PROJECT))

    def release_ci_templates(self, version, edit):
        """A later release of the shared jobs: `edit(folder)` changes a clone's files, then commit and tag `version`."""
        clone = self.folder / "seed" / f"shared-jobs-{version}"
        git("clone", "-q", self.bare_repo(TEMPLATES_PROJECT), clone)
        edit(clone)
        git("commit", "-q", "-am", f"Release {version}", cwd=clone)
        git("tag", version, cwd=clone)
        git("push", "-q", "origin", "master", version, cwd=clone)
        shutil.rmtree(clone)

    def create_dags_repo(self):
        self.create_project(DAGS_PROJECT, {"README.md": "DAGs synced by Airflow every 60 s.\n"})

    def git_env(self):
        """Environment that sends the projects' https URLs to the bare repos (no global git config touched)."""
        rules = []
        for project in (TEMPLATES_PROJECT, DAGS_PROJECT):
            group = project.rsplit("/", 1)[0]
            for host in (HOST, f"{HOST}:443"):  # gitlab-ci-local also uses the explicit port
                rules.append((f"url.file://{self.remotes / group}/.insteadOf", f"https://{host}/{group}/"))
        env = {"GIT_CONFIG_COUNT": str(len(rules))}
        for index, (key, value) in enumerate(rules):
            env[f"GIT_CONFIG_KEY_{index}"], env[f"GIT_CONFIG_VALUE_{index}"] = key, value
        return env

    def dags_log(self, branch="master"):
        return git("log", "--format=%s", branch, cwd=self.bare_repo(DAGS_PROJECT)).splitlines()

    def dags_file(self, path, branch="master"):
        return git("show", f"{branch}:{path}", cwd=self.bare_repo(DAGS_PROJECT))

    def dags_files(self, branch="master"):
        return git("ls-tree", "-r", "--name-only", branch, cwd=self.bare_repo(DAGS_PROJECT)).splitlines()

    def dags_history_is_linear(self, branch="master"):
        merges = git("rev-list", "--merges", branch, cwd=self.bare_repo(DAGS_PROJECT))
        return merges == ""


def make_job_repo(folder, registry, group=JOBS_GROUP, **answers):
    """Bake a job repo that pushes to the test registry, commit it, and give it a GitLab origin in `group`."""
    repo = bake(folder, docker_registry=registry.host, **answers)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", f"Start {repo.name}", cwd=repo)
    git("remote", "add", "origin", f"https://{HOST}/{group}/{repo.name}.git", cwd=repo)  # CI_PROJECT_PATH
    return repo


# gitlab-ci-local cannot start the docker:dind service; the job uses this machine's engine instead.
WRAPPER = """include:
  - local: .gitlab-ci.yml
nexus-image:
  services: []
nexus-dev-image:
  services: []
"""


def run_tag_pipeline(repo, gitlab, tag, variables, extra_env=None):
    """Run the repo's .gitlab-ci.yml as GitLab runs a pipeline for `tag`."""
    selection = ["--variable", f"CI_COMMIT_TAG={tag}", "--unset-variable", "CI_COMMIT_BRANCH"]
    return run_pipeline(repo, gitlab, selection, variables, extra_env)


def run_branch_job(repo, gitlab, job, variables, extra_env=None):
    """Run one job of the repo's branch pipeline (the branch checked out), as if someone pressed its play button."""
    return run_pipeline(repo, gitlab, [job, "--manual", job], variables, extra_env)


# gitlab-ci-local 4.73 fetches the two components of one project in parallel into one folder, and one of
# its copies can fail on the folder the other just made ("cp: cannot create directory ... File exists").
# GitLab resolves includes on its server: this race is the stand-in's alone, so such a run is run again.
INCLUDE_RACE = re.compile(r"Component include could not be fetched[\s\S]*cannot create directory .*: File exists")


def gitlab_ci_local(arguments, cwd, env, timeout=600):
    """gitlab-ci-local with these arguments; run again (3 times at most) when it lost its own include race."""
    for _ in range(3):
        result = run([GITLAB_CI_LOCAL, *arguments], cwd=cwd, env=env, check=False, timeout=timeout)
        if not (result.returncode != 0 and INCLUDE_RACE.search(result.stdout + result.stderr)):
            break
    return result


def run_pipeline(repo, gitlab, selection, variables, extra_env=None):
    """Run the repo's .gitlab-ci.yml with gitlab-ci-local; `selection` picks the pipeline or the jobs."""
    wrapper = repo / ".gitlab-ci-local" / "wrapper.yml"  # ignored by git and by docker build
    shutil.rmtree(repo / ".gitlab-ci-local" / "output", ignore_errors=True)  # logs of this run only
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(WRAPPER)
    docker_bin = repo / ".gitlab-ci-local" / "bin"
    docker_bin.mkdir(exist_ok=True)
    if not (docker_bin / "docker").exists():
        (docker_bin / "docker").symlink_to(DOCKER)
    env = {
        **os.environ,
        **gitlab.git_env(),
        "PATH": f"{docker_bin}{os.pathsep}{os.environ['PATH']}",
        "DOCKER_CONFIG": str(repo / ".gitlab-ci-local" / "docker-config"),  # docker login writes here
        **(extra_env or {}),
    }
    arguments = ["--file", ".gitlab-ci-local/wrapper.yml", "--force-shell-executor", "--fetch-includes", *selection]
    for name, value in variables.items():
        arguments += ["--variable", f"{name}={value}"]
    started = time.perf_counter()
    result = gitlab_ci_local(arguments, repo, env, timeout=900)
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    logs = {log.stem: log.read_text() for log in (repo / ".gitlab-ci-local" / "output").glob("*.log")}
    job_seconds = {
        job: float(value) * UNIT_SECONDS[unit]
        for job, value, unit in re.findall(r"^(\S+)\s+finished in ([\d.]+) (ms|s|min)\b", output, re.M)
    }
    return PipelineRun(result.returncode, output, logs, job_seconds, seconds)


# A repository's commits as a person makes them, and what cruft could not merge in a job repo.
CONFLICT_MARKERS = re.compile(r"^(<<<<<<<|>>>>>>>)", re.M)


def commit_all(repo, message, init=False):
    if init:
        git("init", "-q", "-b", "main", cwd=repo)
    git("add", "--all", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)


def conflicts(repo):
    """What cruft could not merge: files unmerged in git or with conflict markers, and .rej files."""
    files = [path.relative_to(repo) for path in repo.rglob("*") if path.is_file()]
    files = [path for path in files if path.parts[0] != ".git"]
    unmerged = git("diff", "--name-only", "--diff-filter=U", cwd=repo).split()
    marked = [str(path) for path in files if CONFLICT_MARKERS.search((repo / path).read_text(errors="replace"))]
    rejected = [str(path) for path in files if path.suffix == ".rej"]
    return unmerged + marked + rejected
