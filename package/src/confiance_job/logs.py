"""A run's step logs in the terminal, as Airflow writes them, and why a step failed.

Airflow's log endpoint answers with what was written since the continuation token it
gave last time: each line is read, and printed, once. Airflow 3 sends structured lines
(/api/v2), Airflow 2 text (/api/v1). Standard library only.
"""

import ast
import re
import time
import urllib.parse

from .rules import failure_reason
from .trigger import FINISHED, TriggerError

# A try is over in these states; "up_for_retry" means another try follows.
TRY_OVER = {"success", "failed", "up_for_retry", "skipped", "upstream_failed", "removed"}
STEP_OVER = TRY_OVER - {"up_for_retry"}
WRITING = {"running", "deferred", "restarting", "up_for_reschedule"}


def log_lines(content):
    """The text lines of one answer: Airflow 3's structured lines, or Airflow 2's text."""
    return [text for _, text in log_entries(content)]


def log_entries(content):
    """(identity, text) of each line of one answer. Airflow 3 stamps each record to the microsecond,
    which tells a line sent again from the same words written again; Airflow 2's text is its own identity."""
    if isinstance(content, str):
        return [(line, line) for line in airflow2_lines(content)]
    entries, in_source_details = [], False
    for item in content or []:
        if not isinstance(item, dict):
            entries.extend((line, line) for line in str(item).splitlines())
            continue
        event = str(item.get("event", ""))
        if event == "::group::Log message source details":  # where Airflow found the file: not the step's
            in_source_details = True
            continue
        if event == "::endgroup::" or event.startswith("::group::"):
            in_source_details = False
            continue
        if in_source_details:
            continue
        timestamp = str(item.get("timestamp") or "")
        level = str(item.get("level") or "").upper()
        prefix = " ".join(part for part in (timestamp[11:19], level if level not in ("", "INFO") else "") if part)
        for number, text in enumerate(event.splitlines() or [""]):
            line = f"{prefix} {text}" if prefix and number == 0 else text
            entries.append(((timestamp, event, number), line))
        for number, error in enumerate(item.get("error_detail") or []):
            entries.append(((timestamp, event, "error", number), f"{error.get('exc_type')}: {error.get('exc_value')}"))
    return entries


def already_shown(shown, new):
    """How many of the new entries repeat the last ones shown. When a try ends its log moves (from the
    worker's log server to its file), and Airflow may send it again from its start or from a few lines
    back, whatever the token."""
    if not shown or not new:
        return 0
    longest = min(len(shown), len(new))
    starts = [i for i in range(len(shown) - longest, len(shown)) if shown[i] == new[0]]
    for start in starts:  # earliest start first: the longest overlap
        if shown[start:] == new[: len(shown) - start]:
            return len(shown) - start
    return 0


def airflow2_lines(content):
    """Airflow 2 sends the str() of [(host, text)]; older answers plain text."""
    try:
        parts = ast.literal_eval(content)
        text = "".join(part[1] for part in parts)
    except (ValueError, SyntaxError, TypeError, IndexError):
        text = content
    # Each answer starts on a new line; "***" lines say where Airflow found the file; ::group:: folds the UI.
    lines = text.strip("\n").splitlines()
    return [line for line in lines if not line.startswith("*** ") and not GROUP_MARK.search(line)]


GROUP_MARK = re.compile(r"INFO - ::(group::|endgroup::)")
# An exception as Python ends a traceback (Airflow 2) or Airflow 3 writes its error: "ConfigException: ...".
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Z]\w*(?:Error|Exception)): (\S.*)$")


def last_exception(lines):
    """The last exception a log names, as "ExceptionName: its message"; None if it names none."""
    found = [EXCEPTION_LINE.match(line) for line in lines]
    last = [match for match in found if match][-1:]
    return f"{last[0][1]}: {last[0][2]}" if last else None


def instance_name(task):
    """How a task instance is shown: its step, and for a pod of a sweep its number and values
    ("train[1] LR=0.01", from the DAG's name for it, "1: LR=0.01")."""
    index = task.get("map_index", -1)
    if index is None or index < 0:
        return task["task_id"]
    label = str(task.get("rendered_map_index") or "").removeprefix(f"{index}: ")
    return f"{task['task_id']}[{index}]" + (f" {label}" if label and label != str(index) else "")


class RunLogs:
    """The logs of one run, step after step and try after try, each line printed once.
    A swept step's pods are shown one after the other, in their order."""

    def __init__(self, airflow, run_id, step=None, say=print):
        self.airflow, self.run_id, self.say = airflow, run_id, say
        self.run_path = f"/dags/{airflow.dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        self.steps = steps_in_order(airflow)
        if step and step not in self.steps:
            raise TriggerError(f"no step {step!r}; the steps are: {', '.join(self.steps)}")
        self.steps = [step] if step else self.steps
        self.tokens, self.shown, self.identities, self.done = {}, {}, {}, set()
        self.writing = None  # the try whose lines were printed last
        self.reasons = {}

    def run_state(self):
        """(run state, {step: [its task instances, in map index order]}); a clear error if the run does not exist."""
        run = self.airflow.request(
            "GET", self.run_path, missing=f"Airflow has no run {self.run_id!r} of {self.airflow.dag_id}"
        )
        tasks, total = [], None
        while total is None or len(tasks) < total:  # a page at a time: a sweep may have hundreds of pods
            page = self.airflow.request("GET", f"{self.run_path}/taskInstances?limit=100&offset={len(tasks)}")
            tasks, total = tasks + page["task_instances"], page.get("total_entries", 0)
            if not page["task_instances"]:
                break
        instances = {}
        for task in sorted(tasks, key=lambda task: -1 if task.get("map_index") is None else task["map_index"]):
            instances.setdefault(task["task_id"], []).append(task)
        return run["state"], instances

    def read_new(self, task, try_number):
        """Print what the try wrote since the last read (Airflow sends all of it at once)."""
        name, step, index = instance_name(task), task["task_id"], task.get("map_index", -1)
        key = (step, index, try_number)
        token = self.tokens.get(key)
        query = {"map_index": index} if index is not None and index >= 0 else {}
        query.update({"token": token} if token else {})
        path = f"{self.run_path}/taskInstances/{step}/logs/{try_number}"
        answer = self.airflow.request(
            "GET", path + (f"?{urllib.parse.urlencode(query)}" if query else ""), missing="no log yet"
        )
        first_look = key not in self.shown
        if first_look:
            self.shown[key], self.identities[key] = [], []
        entries = log_entries(answer.get("content"))
        entries = entries[already_shown(self.identities[key], [identity for identity, _ in entries]) :]
        if first_look or (entries and self.writing != key):  # as tail -f does: a header whenever the source changes
            self.say(f"==> {name} (try {try_number}) <==")
            self.writing = key
        for identity, line in entries:
            self.say(line)
            self.shown[key].append(line)
            self.identities[key].append(identity)
        self.tokens[key] = answer.get("continuation_token") or token

    def pass_once(self, tasks, run_over):
        """One look at every step in order; stops at the first try still being written (step after step)."""
        for step in self.steps:
            for task in tasks.get(step) or [{"task_id": step}]:
                if not self.pass_instance(task, run_over):
                    return False
        return True

    def pass_instance(self, task, run_over):
        """Print what one task instance wrote since the last look; False while it is not over."""
        name, step, index = instance_name(task), task["task_id"], task.get("map_index", -1)
        state, tries = task.get("state"), task.get("try_number") or 0
        for try_number in range(1, tries + 1):
            key = (step, index, try_number)
            if key in self.done:
                continue
            over = try_number < tries or state in TRY_OVER
            if not over and state not in WRITING:
                if run_over:
                    break
                return False  # not started yet: later steps wait for it
            self.read_new(task, try_number)
            if not over:
                if run_over:
                    break
                return False
            self.done.add(key)
            try_state = state if try_number == tries else "failed"
            if try_state in ("failed", "up_for_retry"):
                shown = self.shown.get(key, [])
                reason = failure_reason("\n".join(shown)) or last_exception(shown)
                log_page = self.airflow.log_page(self.run_id, step, index)
                self.reasons[name] = reason or f"unknown, see the log: {log_page}"
                self.say(f"{name} (try {try_number}) failed: {self.reasons[name]}")
        if state in STEP_OVER or run_over:
            if (step, index, "state") not in self.done:
                self.done.add((step, index, "state"))
                self.say(f"  {name}: {state or 'not run'}")
        elif tries == 0:
            return False
        return True

    def states(self, tasks):
        """{shown name: state} of every task instance of the steps followed."""
        instances = [task for step in self.steps for task in tasks.get(step) or [{"task_id": step}]]
        return {instance_name(task): (task.get("state"), task) for task in instances}

    def follow(self, every=2.0, timeout=None, follow=True):
        """Print the logs until the run ends (or once, follow=False); returns (run state, {step: state})."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state, tasks = self.run_state()
            run_over = state in FINISHED or not follow
            complete = self.pass_once(tasks, run_over)
            if run_over and (complete or not follow):
                return state, self.states(tasks)
            if deadline is not None and time.monotonic() > deadline:
                raise TriggerError(
                    f"run {self.run_id} is still {state} after {timeout:.0f} s; it goes on in Airflow: "
                    f"{self.airflow.run_page(self.run_id)}"
                )
            time.sleep(every)


def steps_in_order(airflow):
    """The DAG's task ids, each after the ones it waits for."""
    tasks = airflow.request("GET", f"/dags/{airflow.dag_id}/tasks")["tasks"]
    downstream = {task["task_id"]: task.get("downstream_task_ids") or [] for task in tasks}
    waits = {step: sum(step in after for after in downstream.values()) for step in downstream}
    order = []
    ready = sorted(step for step, count in waits.items() if count == 0)
    while ready:
        step = ready.pop(0)
        order.append(step)
        for after in sorted(downstream[step]):
            waits[after] -= 1
            if waits[after] == 0:
                ready.append(after)
    return order


def last_run(airflow):
    """The id of the DAG's most recent run."""
    runs = airflow.request("GET", f"/dags/{airflow.dag_id}/dagRuns?order_by=-id&limit=1")["dag_runs"]
    if not runs:
        raise TriggerError(f"{airflow.dag_id} has no run yet: make trigger starts one")
    return runs[0]["dag_run_id"]


def follow_logs(airflow, run_id, step=None, follow=True, timeout=None, every=2.0, say=print):
    """Print the run's logs (until it ends, if follow), then how it ended; TriggerError if it failed."""
    logs = RunLogs(airflow, run_id, step, say)
    state, steps = logs.follow(every, timeout, follow)
    if state not in FINISHED:
        say(f"Run {run_id}: {state}; --follow (make logs) follows it to its end")
        return logs
    say(f"Run {run_id}: {state}\n{airflow.run_page(run_id)}")
    failed = [name for name, (step_state, _) in steps.items() if step_state == "failed"]
    for name in failed:
        task = steps[name][1]
        say(f"  log of {name}: {airflow.log_page(run_id, task['task_id'], task.get('map_index', -1))}")
    if state != "success":
        unknown = f"unknown, see the log: {airflow.run_page(run_id)}"
        why = "; ".join(f"step {name} failed: {logs.reasons.get(name, unknown)}" for name in failed)
        raise TriggerError(f"run {run_id} failed" + (f": {why}" if why else ""))  # the last line: why
    return logs
