"""The shared CI's DAG sync: after a release's image is pushed, copy the job's DAG
into the airflow-dags repository (Airflow syncs it every 60 s), with its default
image tag set to the version just released.

Safe by construction: a DAG that does not import is never synced; only the job's
own file is written; a push rejected because another release pushed first is
rebased and retried; re-running a tag makes no new commit; the token travels in
an HTTP header, never in a URL or a log line.
"""

import base64
import os
import random
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .dags import DagError, load_dag
from .rules import release_version

DEFAULT_IMAGE_TAG_LINE = re.compile(r'^DEFAULT_IMAGE_TAG = "[^"]*"', re.M)
REQUIRED = ["PROJECT_NAME", "DAG_FILE", "AIRFLOW_DAGS_REPO", "AIRFLOW_DAGS_BRANCH", "AIRFLOW_DAGS_TOKEN"]


class SyncError(Exception):
    """The sync stopped; the message says why and what to do. Nothing was pushed."""


@dataclass
class Release:
    """What the sync job reads from the CI variables (see airflow-dag-sync.gitlab-ci.yml)."""

    dag_id: str
    dag_file: Path
    dags_repo: str
    branch: str
    folder: str
    token: str
    tag: str
    short_sha: str
    attempts: int

    @classmethod
    def from_environment(cls, env=os.environ):
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise SyncError(f"CI variable {missing[0]} is not set (see the top of airflow-dag-sync.gitlab-ci.yml).")
        return cls(
            dag_id=env["PROJECT_NAME"],
            dag_file=Path(env["DAG_FILE"]),
            dags_repo=env["AIRFLOW_DAGS_REPO"],
            branch=env["AIRFLOW_DAGS_BRANCH"],
            folder=env.get("AIRFLOW_DAGS_FOLDER") or ".",
            token=env["AIRFLOW_DAGS_TOKEN"],
            tag=env.get("CI_COMMIT_TAG", ""),
            short_sha=env.get("CI_COMMIT_SHORT_SHA") or "unknown",
            attempts=int(env.get("DAG_SYNC_ATTEMPTS") or 8),
        )

    @property
    def target(self):
        """The DAG's path in the dags repository."""
        return str(Path(self.folder) / f"{self.dag_id}.py").removeprefix("./")


def stamp(dag_text, version, dag_file="the DAG"):
    """The DAG with its default image tag set to `version`: it runs the image just pushed."""
    if len(DEFAULT_IMAGE_TAG_LINE.findall(dag_text)) != 1:
        raise SyncError(f'{dag_file} must have exactly one line DEFAULT_IMAGE_TAG = "...".')
    return DEFAULT_IMAGE_TAG_LINE.sub(f'DEFAULT_IMAGE_TAG = "{version}"', dag_text)


def check_imports(path, dag_id, shown_as):
    """Parse the file as Airflow's scheduler will: a DAG that does not import is never synced."""
    try:
        dag = load_dag(path, dag_id)
    except DagError as error:
        raise SyncError(
            f"{error}\n{shown_as} does not import in Airflow; nothing was synced. "
            "Run 'make test' in the job repo to see why."
        ) from None
    print(f"DAG {dag_id} imports: {len(dag.tasks)} task(s)")


class DagsRepository:
    """A clone of the airflow-dags repository; the token goes in an HTTP header through git's env config."""

    def __init__(self, release, folder):
        self.release, self.folder = release, Path(folder)
        self.env = self.with_token_header(os.environ.copy(), release.token)

    @staticmethod
    def with_token_header(env, token):
        index = int(env.get("GIT_CONFIG_COUNT", "0"))  # keep settings the runner already passes this way
        header = base64.b64encode(f"oauth2:{token}".encode()).decode()
        env.update({f"GIT_CONFIG_KEY_{index}": "http.extraHeader", "GIT_CONFIG_COUNT": str(index + 1)})
        env[f"GIT_CONFIG_VALUE_{index}"] = f"Authorization: Basic {header}"
        return env

    def git(self, *args, cwd=None, check=True):
        result = subprocess.run(["git", *args], cwd=cwd or self.folder, env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SyncError(f"git {args[0]} failed: {result.stderr.strip()}")
        return result

    def clone(self):
        release = self.release
        cloned = self.git(
            "clone", "--quiet", "--single-branch", "--branch", release.branch, release.dags_repo, str(self.folder),
            cwd=self.folder.parent, check=False,
        )  # fmt: skip
        if cloned.returncode != 0:
            raise SyncError(
                f"cannot clone {release.dags_repo} (branch {release.branch}): check the URL, the branch and that "
                "AIRFLOW_DAGS_TOKEN is a project access token of that repository with write_repository."
            )

    def commit(self, text):
        """Write the DAG and commit it; False when the repository already has exactly this file."""
        release = self.release
        path = self.folder / release.target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.git("add", "--", release.target)
        if self.git("diff", "--cached", "--quiet", check=False).returncode == 0:
            return False
        author = os.environ.get("GITLAB_USER_NAME") or "confiance-job CI"
        email = os.environ.get("GITLAB_USER_EMAIL") or "ci@confiance-job.invalid"
        message = f"{release.dag_id} {release.tag} ({release.short_sha})"
        self.git("-c", f"user.name={author}", "-c", f"user.email={email}", "commit", "--quiet", "-m", message)
        return True

    def push(self):
        """Push; when another release pushed first, rebase on it and retry after a random pause. The attempt count."""
        release = self.release
        for attempt in range(1, release.attempts + 1):
            pushed = self.git("push", "--quiet", "-o", "ci.skip", "origin", f"HEAD:{release.branch}", check=False)
            if pushed.returncode == 0:
                return attempt
            if attempt == release.attempts:
                break
            pause = random.uniform(0, attempt)
            print(f"Push rejected (attempt {attempt}): another release pushed first. Rebasing, retry in {pause:.1f} s.")
            time.sleep(pause)
            committer = ["-c", "user.name=ci", "-c", "user.email=ci@confiance-job.invalid"]
            if self.git(*committer, "pull", "--quiet", "--rebase", "origin", release.branch, check=False).returncode:
                raise SyncError(f"rebase on {release.branch} failed; nothing was pushed: re-run this job.")
        said = pushed.stderr.strip().splitlines()[-1:] or ["nothing"]
        raise SyncError(
            f"push to {release.dags_repo} rejected {release.attempts} times (git said: {said[0]}); "
            "nothing was lost: re-run this job."
        )


def sync_dag(release):
    """Stamp, check, commit and push the job's DAG; prints what it did."""
    version = release_version(release.tag)
    if not release.dag_file.is_file():
        raise SyncError(f"DAG_FILE {release.dag_file} does not exist in this repository.")
    with tempfile.TemporaryDirectory() as work:
        stamped = Path(work) / f"{release.dag_id}.py"
        stamped.write_text(stamp(release.dag_file.read_text(), version, release.dag_file))
        check_imports(stamped, release.dag_id, release.dag_file)
        repository = DagsRepository(release, Path(work) / "dags")
        repository.clone()
        if not repository.commit(stamped.read_text()):
            print(f"{release.target} in {release.dags_repo} is already {release.tag}: nothing to commit.")
            return
        attempt = repository.push()
        print(f"Synced {release.target} at {release.tag} to {release.dags_repo} (push attempt {attempt}).")
