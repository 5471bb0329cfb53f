"""Why a step failed, from its log, and the log lines of Airflow's two answer formats.
The log excerpts are the messages of the cncf.kubernetes provider (10.10 on Airflow 2,
10.25 on Airflow 3), the scheduler's events and Airflow's own lines, as they appear in
a task log; tests/test_logs_in_terminal.py reads real logs from Airflow 3 and 2."""

from urllib.parse import parse_qs, urlsplit

import pytest
from confiance_job.logs import airflow2_lines, failure_reason, follow_logs, log_lines
from confiance_job.trigger import TriggerError

POD_FAILED = "Pod my-job-train-x7k2 returned a failure."

EXCERPTS = {
    "exit code": (
        "[2026-12-04T10:01:02.000+0000] {pod.py:1095} INFO - Pod phase: Failed, reason: None\n"
        "[2026-12-04T10:01:02.001+0000] {pod.py:1104} ERROR - Container 'base': state='TERMINATED', "
        "reason='Error', exit_code=3, message='None'\n" + POD_FAILED,
        "exit code 3",
    ),
    "oom": (
        "10:01:02 ERROR Container 'base': state='TERMINATED', reason='OOMKilled', exit_code=137, message='None'\n"
        + POD_FAILED,
        "out of memory (OOMKilled): the step used more than its memory limit; give it more memory",
    ),
    "image, provider 10.25": (
        "10:01:02 WARNING Container 'base': state='WAITING', reason='ErrImagePull', message='rpc error: code = "
        'NotFound desc = failed to pull and unpack image "nexus/my-job:9.9.9": not found\'\n'
        "airflow.providers.cncf.kubernetes.utils.pod_manager.PodLaunchFailedException: "
        "Image cannot be pulled, unable to start: ErrImagePull",
        "image not found (ErrImagePull): check the tag exists in the registry and the image pull secret is in the "
        "namespace",
    ),
    "image, provider 10.10": (
        "{pod.py:1087} WARNING - Pod Event: Failed - Error: ImagePullBackOff\n"
        "PodLaunchFailedException: Pod docker image cannot be pulled, unable to start: ImagePullBackOff",
        "image not found (ImagePullBackOff): check the tag exists in the registry and the image pull secret is in the "
        "namespace",
    ),
    "no node": (
        "10:00:01 WARNING Pod Event: FailedScheduling - 0/3 nodes are available: 3 Insufficient memory. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.\n"
        "PodLaunchTimeoutException: Pod took too long to start. More than 600s. Check the pod events in kubernetes.",
        "no node with the requested resources (3 Insufficient memory): the pod stayed Pending past the startup timeout",
    ),
    "no gpu node": (
        "Pod Event: FailedScheduling - 0/4 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "3 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available\n"
        "Pod took too long to be scheduled on the cluster, giving up. More than 600s.",
        "no node with the requested resources (1 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node "
        "affinity/selector): the pod stayed Pending past the startup timeout",
    ),
    "timeout alone": (
        "Pod took too long to start. More than 600s. Check the pod events in kubernetes.",
        "no node with the requested resources: the pod stayed Pending past the startup timeout",
    ),
    "bash": (
        "Command exited with return code 4\n"
        "AirflowException: Bash command failed. The command returned a non-zero exit code 4.\n"
        "{local_task_job_runner.py:266} INFO - Task exited with return code 1",
        "exit code 4",
    ),
}


@pytest.mark.parametrize("log, reason", EXCERPTS.values(), ids=EXCERPTS.keys())
def test_the_reason_of_a_failure_is_read_from_the_providers_messages(log, reason):
    assert failure_reason(log) == reason


@pytest.mark.parametrize(
    "log",
    [
        POD_FAILED,
        "kubernetes.config.config_exception.ConfigException: Invalid kube-config file. No configuration found.",
        "Container 'base': state='TERMINATED', reason='Completed', exit_code=0, message='None'",
        "",
    ],
    ids=["pod-failed-alone", "no-cluster", "exit-0", "empty"],
)
def test_a_log_that_does_not_say_why_gives_no_reason(log):
    assert failure_reason(log) is None


def test_airflow_3_structured_lines_become_text_without_the_source_details():
    content = [
        {"event": "::group::Log message source details"},
        {"event": "/airflow/logs/dag_id=x/run_id=y/task_id=prepare/attempt=1.log"},
        {"event": "::endgroup::"},
        {"timestamp": "2026-12-04T18:08:24.936507Z", "event": "::group::Pre Execute", "level": "info"},
        {"timestamp": "2026-12-04T18:08:24.936507Z", "event": "line 1", "level": "info", "logger": "task"},
        {"timestamp": "2026-12-04T18:08:25.000000Z", "event": "two\nlines", "level": "warning"},
        {
            "timestamp": "2026-12-04T18:08:30.972735Z",
            "event": "Task failed with exception",
            "level": "error",
            "error_detail": [{"exc_type": "AirflowException", "exc_value": "Bash command failed."}],
        },
    ]
    assert log_lines(content) == [
        "18:08:24 line 1",
        "18:08:25 WARNING two",
        "lines",
        "18:08:30 ERROR Task failed with exception",
        "AirflowException: Bash command failed.",
    ]


def test_airflow_2_text_loses_its_markers_and_its_leading_newline():
    content = repr(
        [
            (
                "vm",
                "\n INFO - ::group::Log message source details\n*** Found local files:\n***   * /logs/attempt=1.log\n"
                " INFO - ::endgroup::\n[2026-12-04T18:11:09.461+0000] {subprocess.py:106} INFO - line 1\n\n"
                "[2026-12-04T18:11:09.461+0000] {subprocess.py:106} INFO - line 2\n",
            )
        ]
    )
    assert airflow2_lines(content) == [
        "[2026-12-04T18:11:09.461+0000] {subprocess.py:106} INFO - line 1",
        "",
        "[2026-12-04T18:11:09.461+0000] {subprocess.py:106} INFO - line 2",
    ]
    assert airflow2_lines("[('vm', '')]") == []


class ScriptedAirflow:
    """Answers the log follower's requests from a script of (run state, {step: (state, tries)}), one per poll,
    then the last forever; each read of a try's log finds one new line. A pod of a sweep is "train[1]"
    (its name in the UI: "1: LR=0.1")."""

    dag_id, is_v2 = "job", True

    def __init__(self, *polls):
        self.polls, self.written = list(polls), {}

    def instance(self, name, state, tries):
        step, _, index = name.rstrip("]").partition("[")
        mapped = {"map_index": int(index), "rendered_map_index": f"{index}: LR=0.{index}"} if index else {}
        return {"task_id": step, "state": state, "try_number": tries, "map_index": -1, **mapped}

    def request(self, method, path, body=None, missing=None):
        if path.endswith("/tasks"):
            return {"tasks": [{"task_id": "prepare", "downstream_task_ids": ["train"]}, {"task_id": "train"}]}
        if "/taskInstances?" in path:
            steps = (self.polls.pop(0) if len(self.polls) > 1 else self.polls[0])[1]
            instances = [self.instance(name, *state) for name, state in reversed(steps.items())]  # in no order
            return {"task_instances": instances, "total_entries": len(instances)}
        if "/logs/" in path:
            step, try_number = path.split("/taskInstances/")[1].split("?")[0].split("/logs/")
            index = parse_qs(urlsplit(path).query).get("map_index", [""])[0]
            name = f"{step}[{index}]" if index else step
            key = (name, int(try_number))
            self.written[key] = self.written.get(key, 0) + 1
            return {"content": [{"event": f"{name} {try_number} line {self.written[key]}"}], "continuation_token": "t"}
        return {"state": self.polls[0][0]}

    def run_page(self, run_id):
        return f"http://airflow/runs/{run_id}"

    def log_page(self, run_id, step, map_index=-1):
        return f"http://airflow/runs/{run_id}/tasks/{step}" + (f"/mapped/{map_index}" if map_index >= 0 else "")


def followed(airflow):
    lines = []
    try:
        follow_logs(airflow, "manual__1", every=0, timeout=60, say=lambda text: lines.extend(text.splitlines()))
    except TriggerError as error:
        return lines, str(error)
    return lines, None


def test_steps_are_shown_one_after_the_other_and_each_try_under_its_header():
    airflow = ScriptedAirflow(
        ("running", {"prepare": ("running", 1), "train": (None, 0)}),
        ("running", {"prepare": ("success", 1), "train": ("running", 1)}),
        ("running", {"prepare": ("success", 1), "train": ("up_for_retry", 1)}),
        ("running", {"prepare": ("success", 1), "train": ("queued", 2)}),
        ("failed", {"prepare": ("success", 1), "train": ("failed", 2)}),
    )
    lines, error = followed(airflow)
    assert lines[:9] == [
        "==> prepare (try 1) <==",
        "prepare 1 line 1",
        "prepare 1 line 2",
        "  prepare: success",
        "==> train (try 1) <==",
        "train 1 line 1",
        "train 1 line 2",
        "train (try 1) failed: unknown, see the log: http://airflow/runs/manual__1/tasks/train",
        "==> train (try 2) <==",
    ]
    assert (
        error
        == "run manual__1 failed: step train failed: unknown, see the log: http://airflow/runs/manual__1/tasks/train"
    )


def test_each_pod_of_a_sweep_is_shown_under_its_name_and_a_failed_one_says_which():
    airflow = ScriptedAirflow(
        ("running", {"prepare": ("success", 1), "train[0]": ("running", 1), "train[1]": ("running", 1)}),
        ("failed", {"prepare": ("success", 1), "train[0]": ("success", 1), "train[1]": ("failed", 1)}),
    )
    lines, error = followed(airflow)
    assert lines[3:12] == [
        "==> train[0] LR=0.0 (try 1) <==",
        "train[0] 1 line 1",
        "train[0] 1 line 2",
        "  train[0] LR=0.0: success",
        "==> train[1] LR=0.1 (try 1) <==",
        "train[1] 1 line 1",
        "train[1] LR=0.1 (try 1) failed: unknown, see the log: http://airflow/runs/manual__1/tasks/train/mapped/1",
        "  train[1] LR=0.1: failed",
        "Run manual__1: failed",
    ]
    assert error.startswith("run manual__1 failed: step train[1] LR=0.1 failed: unknown, see the log")


def test_a_run_marked_failed_before_any_step_ran_ends_at_once():
    lines, error = followed(ScriptedAirflow(("failed", {"prepare": (None, 0), "train": (None, 0)})))
    assert lines[:2] == ["  prepare: not run", "  train: not run"] and error == "run manual__1 failed"


def test_steps_marked_done_without_a_try_end_the_run_well():
    airflow = ScriptedAirflow(
        ("queued", {"prepare": (None, 0), "train": (None, 0)}),
        ("success", {"prepare": ("success", 0), "train": ("success", 0)}),
    )
    lines, error = followed(airflow)
    assert error is None and lines[:3] == ["  prepare: success", "  train: success", "Run manual__1: success"]


class AirflowSendingTheLogAgain(ScriptedAirflow):
    """As Airflow 3 may do once a try ends: the log sent again from its first line, with the new lines."""

    def request(self, method, path, body=None, missing=None):
        answer = super().request(method, path, body, missing)
        if "/logs/" in path:
            step, try_number = answer["content"][0]["event"].split()[:2]
            count = self.written[(step, int(try_number))]
            answer["content"] = [{"event": f"{step} {try_number} line {n}"} for n in range(1, count + 1)]
        return answer


def test_a_log_sent_again_from_its_start_shows_each_line_once():
    airflow = AirflowSendingTheLogAgain(
        ("running", {"prepare": ("running", 1)}),
        ("running", {"prepare": ("running", 1)}),
        ("success", {"prepare": ("success", 1), "train": ("success", 1)}),
    )
    lines, error = followed(airflow)
    assert error is None
    prepare = [line for line in lines if line.startswith("prepare 1 line")]
    assert prepare == ["prepare 1 line 1", "prepare 1 line 2", "prepare 1 line 3"]


class AirflowSendingTheTailAgain(ScriptedAirflow):
    """As Airflow 3 did once a try ended: the last lines already sent come again, then the new line."""

    def request(self, method, path, body=None, missing=None):
        answer = super().request(method, path, body, missing)
        if "/logs/" in path:
            step, try_number = answer["content"][0]["event"].split()[:2]
            count = self.written[(step, int(try_number))]
            answer["content"] = [
                {"timestamp": f"2026-12-05T01:46:{n:02d}.000001Z", "event": f"{step} {try_number} line {n}"}
                for n in range(max(1, count - 2), count + 1)
            ]
        return answer


def test_a_log_sent_again_from_a_few_lines_back_shows_each_line_once():
    airflow = AirflowSendingTheTailAgain(
        *[("running", {"prepare": ("running", 1)})] * 5, ("success", {"prepare": ("success", 1)})
    )
    lines, error = followed(airflow)
    prepare = [line for line in lines if " prepare 1 line" in line]
    assert prepare == [f"01:46:{n:02d} prepare 1 line {n}" for n in range(1, 7)]


def test_the_same_words_written_again_are_shown_again():
    once = {"timestamp": "2026-12-05T01:46:05.000001Z", "event": "epoch done"}
    again = {"timestamp": "2026-12-05T01:46:05.000002Z", "event": "epoch done"}

    class WritingTheSameWordsTwice(ScriptedAirflow):
        def request(self, method, path, body=None, missing=None):
            answer = super().request(method, path, body, missing)
            if "/logs/" in path:
                answer["content"] = [once] if self.written[("prepare", 1)] == 1 else [again]
            return answer

    airflow = WritingTheSameWordsTwice(
        ("running", {"prepare": ("running", 1)}), ("success", {"prepare": ("success", 1)})
    )
    lines, _ = followed(airflow)
    assert lines.count("01:46:05 epoch done") == 2


@pytest.mark.parametrize(
    "lines",
    [
        [
            "03:04:17 ERROR Task failed with exception",
            "ConfigException: Invalid kube-config file.",
            "ConfigException: Service host/port is not set.",
        ],
        [
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in <module>',
            "kubernetes.config.config_exception.ConfigException: Service host/port is not set.",
            "[2026-12-05T03:04:17.000+0000] {taskinstance.py:1225} INFO - Marking task as FAILED.",
        ],
    ],
    ids=["airflow3", "airflow2"],
)
def test_a_failure_no_rule_knows_is_told_by_the_last_exception_the_log_names(lines):
    from confiance_job.logs import last_exception

    assert last_exception(lines) == "ConfigException: Service host/port is not set."
    assert last_exception(["train 1 line 1", "Command exited with return code 0"]) is None
