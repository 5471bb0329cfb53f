"""The DAG sync's parts that need no Airflow, on real git repositories: stamping,
committing only the job's file, ownership, retiring, retrying a push another
release beat, the token."""

import base64
import subprocess

import pytest
from confiance_job import sync
from confiance_job.sync import DagsRepository, Release, SyncError, stamp

DAG = 'DAG_ID = "my-job"\nDEFAULT_IMAGE_TAG = "0.1.0"  # CI sets this\ndag = DAG(dag_id=DAG_ID)\n'


def git(*args, cwd):
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def dags_repo(tmp_path):
    """A bare airflow-dags repository with one commit on master."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "README.md").write_text("DAGs\n")
    git("init", "-q", "-b", "master", cwd=seed)
    git("add", ".", cwd=seed)
    git("commit", "-q", "-m", "Initial commit", cwd=seed)
    git("clone", "-q", "--bare", str(seed), str(tmp_path / "dags.git"), cwd=tmp_path)
    git("config", "receive.advertisePushOptions", "true", cwd=tmp_path / "dags.git")  # as GitLab does
    return tmp_path / "dags.git"


def release(dags_repo, **changes):
    values = dict(dag_id="my-job", dag_file=None, dags_repo=str(dags_repo), branch="master", folder=".")
    values.update(token="glpat-T0ken", tag="v1.2.0", short_sha="abc1234", attempts=3, project="data/my-job")
    return Release(**{**values, **changes})


def cloned(release, folder):
    repository = DagsRepository(release, folder)
    repository.clone()
    return repository


def test_stamping_sets_the_default_image_tag_and_nothing_else():
    assert stamp(DAG, "1.2.0") == DAG.replace('"0.1.0"', '"1.2.0"')
    assert stamp(DAG, "1.2.0") != DAG


@pytest.mark.parametrize("text", ['DAG_ID = "x"\n', DAG + 'DEFAULT_IMAGE_TAG = "0.2.0"\n'])
def test_a_dag_without_exactly_one_default_tag_line_is_refused(text):
    with pytest.raises(SyncError, match='must have exactly one line DEFAULT_IMAGE_TAG = "..."'):
        stamp(text, "1.2.0", "dags/my-job.py")


def test_missing_ci_variables_are_named():
    with pytest.raises(SyncError, match="CI variable AIRFLOW_DAGS_TOKEN is not set"):
        Release.from_environment(
            {"PROJECT_NAME": "a", "DAG_FILE": "d", "AIRFLOW_DAGS_REPO": "r", "AIRFLOW_DAGS_BRANCH": "m"}
        )


@pytest.mark.parametrize("folder, target", [(".", "my-job.py"), ("jobs", "jobs/my-job.py"), ("./a/b", "a/b/my-job.py")])
def test_the_dag_goes_to_its_folder(dags_repo, folder, target):
    assert release(dags_repo, folder=folder).target == target


def test_only_the_jobs_file_is_committed_and_a_rerun_commits_nothing(dags_repo, tmp_path):
    first = cloned(release(dags_repo, folder="jobs"), tmp_path / "first")
    assert first.commit(stamp(DAG, "1.2.0")) is True
    assert first.push() == 1
    assert git("log", "--format=%s", "master", cwd=dags_repo).splitlines() == [
        "my-job v1.2.0 (abc1234)",
        "Initial commit",
    ]
    assert git("show", "--name-only", "--format=", "master", cwd=dags_repo) == "jobs/my-job.py"
    again = cloned(release(dags_repo, folder="jobs"), tmp_path / "again")
    assert again.commit(stamp(DAG, "1.2.0")) is False


def test_a_push_beaten_by_another_release_is_rebased_and_retried(dags_repo, tmp_path, monkeypatch):
    monkeypatch.setattr(sync.time, "sleep", lambda seconds: None)  # the random pause, not the retry, is skipped
    ours = cloned(release(dags_repo), tmp_path / "ours")
    theirs = cloned(release(dags_repo, dag_id="their-job", tag="v3.0.0", project="b/their-job"), tmp_path / "theirs")
    assert ours.commit(stamp(DAG, "1.2.0")) and theirs.commit(stamp(DAG, "3.0.0"))
    assert theirs.push() == 1
    assert ours.push() == 2
    log = git("log", "--format=%s", "master", cwd=dags_repo).splitlines()
    assert log == ["my-job v1.2.0 (abc1234)", "their-job v3.0.0 (abc1234)", "Initial commit"]
    assert git("rev-list", "--merges", "master", cwd=dags_repo) == ""  # a linear history


def test_a_push_refused_every_time_stops_and_says_nothing_was_lost(dags_repo, tmp_path, monkeypatch):
    monkeypatch.setattr(sync.time, "sleep", lambda seconds: None)
    hook = dags_repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho protected branch >&2\nexit 1\n")
    hook.chmod(0o755)
    ours = cloned(release(dags_repo), tmp_path / "ours")
    ours.commit(stamp(DAG, "1.2.0"))
    with pytest.raises(SyncError, match=r"rejected 3 times \(git said: .*\); nothing was lost: re-run this job"):
        ours.push()


def test_a_wrong_clone_address_says_what_to_check(tmp_path):
    with pytest.raises(SyncError, match="cannot clone .* check the URL, the branch and that AIRFLOW_DAGS_TOKEN"):
        cloned(release(tmp_path / "no-such-repo.git"), tmp_path / "clone")


def test_the_token_travels_in_a_header_never_in_the_url(dags_repo, tmp_path, capsys):
    repository = cloned(release(dags_repo), tmp_path / "clone")
    header = base64.b64encode(b"oauth2:glpat-T0ken").decode()
    assert repository.env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert repository.env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {header}"
    assert "glpat-T0ken" not in git("remote", "get-url", "origin", cwd=tmp_path / "clone")
    assert "glpat-T0ken" not in capsys.readouterr().out


def test_settings_the_runner_passes_through_git_env_are_kept():
    env = DagsRepository.with_token_header({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "url.x.insteadOf"}, "t")
    assert env["GIT_CONFIG_COUNT"] == "2" and env["GIT_CONFIG_KEY_0"] == "url.x.insteadOf"
    assert env["GIT_CONFIG_KEY_1"] == "http.extraHeader"


def synced(dags_repo, tmp_path, name="setup", **changes):
    """Release once as a project would, so that the dags repository holds its file."""
    repository = cloned(release(dags_repo, **changes), tmp_path / name)
    repository.commit(stamp(DAG.replace("my-job", repository.release.dag_id), "1.0.0"))
    repository.push()


def test_every_synced_file_names_its_owner_first(dags_repo, tmp_path):
    synced(dags_repo, tmp_path)
    text = git("show", "master:my-job.py", cwd=dags_repo)
    assert (
        text.splitlines()[0] == "# Do not edit here; generated by data/my-job (its release pipeline syncs this file)."
    )
    assert sync.owner_of(text) == "data/my-job"


def test_a_file_owned_by_another_project_is_refused_and_kept(dags_repo, tmp_path):
    synced(dags_repo, tmp_path, project="team-a/my-job")
    intruder = cloned(release(dags_repo, project="team-b/my-job"), tmp_path / "intruder")
    with pytest.raises(SyncError, match="my-job.py in .* belongs to team-a/my-job, not team-b/my-job; nothing was"):
        intruder.commit(stamp(DAG, "2.0.0"))
    assert sync.owner_of(git("show", "master:my-job.py", cwd=dags_repo)) == "team-a/my-job"


def test_a_dag_id_defined_by_another_file_is_refused(dags_repo, tmp_path):
    synced(dags_repo, tmp_path, folder="team-a", project="team-a/my-job")
    elsewhere = cloned(release(dags_repo, folder="team-b", project="team-b/my-job"), tmp_path / "elsewhere")
    with pytest.raises(
        SyncError, match=r"the DAG id my-job is already defined by team-a/my-job.py .* \(team-a/my-job\)"
    ):
        elsewhere.commit(stamp(DAG, "2.0.0"))


DAG_ID_FORMS = {
    "positional": ('with DAG("my-job", schedule=None):\n    pass\n', {"my-job"}),
    "keyword": ('from airflow import models\ndag = models.DAG(schedule=None, dag_id="my-job")\n', {"my-job"}),
    "constant": ('NAME = "my-job"\nwith DAG(NAME):\n    pass\n', {"my-job"}),
    "decorator": ("@dag(schedule=None)\ndef my_job():\n    pass\n", {"my_job"}),
    "bare decorator": ("@dag\ndef train_all():\n    pass\n", {"train_all"}),
    "decorator with id": (
        '@dag("my-job")\ndef anything():\n    pass\n@dag(dag_id="other")\ndef x():\n    pass\n',
        {"my-job", "other"},
    ),
    "computed": ('import os\nwith DAG(os.environ["NAME"]):\n    pass\n', set()),
    "mention only": ('# dag_id="my-job"\nprint("DAG(\'my-job\')")\nDAG_ID = "my-job"\n', set()),
    "broken": ('with DAG("my-job"\n', set()),
}


@pytest.mark.parametrize("text, ids", DAG_ID_FORMS.values(), ids=DAG_ID_FORMS.keys())
def test_dag_ids_are_read_as_airflow_builds_them(text, ids):
    assert sync.dag_ids_defined(text) == ids


def test_a_hand_written_dag_with_a_positional_id_is_seen_and_a_broken_file_blocks_nothing(dags_repo, tmp_path):
    seed = cloned(release(dags_repo), tmp_path / "hand")
    (seed.folder / "theirs.py").write_text('from airflow import DAG\nwith DAG("my-job"):\n    pass\n')
    (seed.folder / "broken.py").write_text('with DAG("my-job"\n')
    git("add", ".", cwd=seed.folder)
    git("commit", "-q", "-m", "hand-written", cwd=seed.folder)
    git("push", "-q", "origin", "master", cwd=seed.folder)
    ours = cloned(release(dags_repo), tmp_path / "ours")
    with pytest.raises(
        SyncError, match=r"the DAG id my-job is already defined by theirs.py .* \(a file written by hand\)"
    ):
        ours.commit(stamp(DAG, "2.0.0"))
    git("rm", "-q", "theirs.py", cwd=seed.folder)
    git("commit", "-q", "-m", "gone", cwd=seed.folder)
    git("push", "-q", "origin", "master", cwd=seed.folder)
    assert cloned(release(dags_repo), tmp_path / "again").commit(stamp(DAG, "2.0.0")) is True


def test_the_same_project_resyncs_freely(dags_repo, tmp_path):
    synced(dags_repo, tmp_path)
    again = cloned(release(dags_repo, tag="v1.1.0"), tmp_path / "again")
    assert again.commit(stamp(DAG, "1.1.0")) is True


def test_a_file_synced_before_ownership_is_adopted_by_the_project_of_its_slug(dags_repo, tmp_path, capsys):
    before = cloned(release(dags_repo), tmp_path / "old-sync")
    (tmp_path / "old-sync" / "my-job.py").write_text(stamp(DAG, "0.9.0"))  # as the sync wrote it before: no header
    git("add", ".", cwd=tmp_path / "old-sync")
    git("commit", "-q", "-m", "my-job v0.9.0", cwd=tmp_path / "old-sync")
    before.push()
    adopter = cloned(release(dags_repo), tmp_path / "adopter")
    assert adopter.commit(stamp(DAG, "1.0.0")) is True
    assert "my-job.py was synced before files had owners: data/my-job adopts it." in capsys.readouterr().out
    adopter.push()
    assert sync.owner_of(git("show", "master:my-job.py", cwd=dags_repo)) == "data/my-job"


def test_retiring_removes_only_the_jobs_own_file(dags_repo, tmp_path):
    synced(dags_repo, tmp_path, name="mine")
    synced(dags_repo, tmp_path, name="theirs", dag_id="their-job", project="b/their-job")
    retiring = cloned(release(dags_repo), tmp_path / "retiring")
    assert retiring.remove() is True
    retiring.push()
    assert git("ls-tree", "--name-only", "master", cwd=dags_repo).split() == ["README.md", "their-job.py"]
    assert git("log", "-1", "--format=%s", "master", cwd=dags_repo) == "my-job retired (abc1234)"


def test_retiring_another_projects_file_is_refused(dags_repo, tmp_path):
    synced(dags_repo, tmp_path, project="team-a/my-job")
    other = cloned(release(dags_repo, project="team-b/my-job"), tmp_path / "other")
    with pytest.raises(SyncError, match="belongs to team-a/my-job"):
        other.remove()


def test_a_pre_release_changes_nothing_and_says_how_to_run_it(tmp_path, capsys):
    dag_file = tmp_path / "my-job.py"
    dag_file.write_text(DAG)
    sync.sync_dag(release(tmp_path / "never-cloned.git", tag="v1.0.0-rc.1", dag_file=dag_file))
    out = capsys.readouterr().out
    assert "v1.0.0-rc.1 is a pre-release: airflow-dags is left as it is" in out
    assert "image tag 1.0.0-rc.1" in out and "make trigger TAG=1.0.0-rc.1" in out


def test_a_release_brings_the_serving_dag_when_the_job_repo_has_one(tmp_path):
    (tmp_path / "my-job.py").write_text(DAG)
    job = release(tmp_path, dag_file=tmp_path / "my-job.py")
    assert job.with_serving() == [job]
    (tmp_path / "my-job-serve.py").write_text(DAG)
    serving = job.with_serving()[1]
    assert (serving.dag_id, serving.dag_file, serving.target) == (
        "my-job-serve",
        tmp_path / "my-job-serve.py",
        "my-job-serve.py",
    )


def test_retiring_leaves_a_serving_file_another_project_owns(dags_repo, tmp_path):
    synced(dags_repo, tmp_path, name="theirs", dag_id="my-job-serve", project="b/my-job-serve")
    synced(dags_repo, tmp_path, name="ours")
    sync.retire_dag(release(dags_repo, dag_file=tmp_path / "my-job.py"))
    assert git("ls-tree", "--name-only", "master", cwd=dags_repo).split() == ["README.md", "my-job-serve.py"]
