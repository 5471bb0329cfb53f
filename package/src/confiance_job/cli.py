"""confiance-job: the platform's commands for job repos and the shared CI.

    confiance-job render '{"image_tag": "0.2.0"}' [--step train]   the pods a Trigger would start
    confiance-job render --serve '{"model_uri": "runs:/<id>/model"}'  the objects a deploy of the model would apply
    confiance-job trigger --tag 0.2.0 --env EPOCHS=3 [--wait]       start a run in Airflow (and follow its logs)
    confiance-job trigger --sweep '[{"LR": "0.1"}, {"LR": "0.01"}]'  a run whose swept step has a pod per item
    confiance-job logs [RUN_ID] [--step train] [--follow]           each step's log (default: the last run)
    confiance-job serve [MODEL_URI] [--stop] [--tag 0.2.0] [--wait]   deploy a model with the serving DAG (or stop it)
    confiance-job run train | --all [--conf JSON]                   the same pods on your machine (docker/podman)
    confiance-job check-dag dags/my-job.py                          does it import, as Airflow parses it?
    confiance-job sync-dag                                          the shared CI's DAG sync job
    confiance-job retire-dag                                        the shared CI's job that removes the DAG
    confiance-job release-version v0.2.0                            0.2.0, or why it is not a release tag

Run from a job repo, the DAG is the one file in dags/ (its serving DAG, <slug>-serve.py,
aside). Errors say what to fix, on stderr, with exit code 1.
"""

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from . import __version__
from .rules import serving_dag_id

SWEEP_EXAMPLE = '[{"LR": "0.1"}, {"LR": "0.01"}]'


class UsageError(Exception):
    """Something the user can fix: the message says what."""


def job_dag_file(given=None):
    """The DAG file: the one given, or the job's DAG in ./dags of a job repo (not its serving DAG)."""
    if given:
        return Path(given)
    files = sorted(Path("dags").glob("*.py"))
    files = [path for path in files if not any(path.stem == serving_dag_id(job.stem) for job in files)]
    if len(files) != 1:
        raise UsageError("run this in a job repo (one DAG file in dags/), or give the DAG file with --dag")
    return files[0]


def serving_dag_file(given=None):
    """The job's serving DAG, dags/<slug>-serve.py; a clear error when the job has none."""
    if given:
        return Path(given)
    job = job_dag_file()
    serving = job.with_name(f"{serving_dag_id(job.stem)}.py")
    if not serving.is_file():
        raise UsageError(f"{job.stem} has no serving DAG ({serving}): it is made when the serving answer is mlflow")
    return serving


def render(args):
    from .dags import load_dag
    from .render import pods_of_step, render_pods, render_serving

    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as error:
        raise UsageError(f"conf is not valid JSON: {error}") from None
    if args.serve:
        with contextlib.redirect_stdout(sys.stderr):
            objects = render_serving(load_dag(serving_dag_file(args.dag)), conf, args.run_id)
        if isinstance(conf, dict) and conf.get("action") == "stop":
            print("action stop applies nothing: it deletes the objects below (by their labels)", file=sys.stderr)
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
        return
    with contextlib.redirect_stdout(sys.stderr):  # Airflow's own log lines are not part of the manifest
        dag = load_dag(job_dag_file(args.dag))
        pods = render_pods(dag, with_sweep(conf, args.sweep, dag), args.run_id)
    chosen = pods_of_step(pods, args.step) if args.step else pods
    if not chosen:
        raise UsageError(f"no step {args.step!r}; the steps are: {', '.join(steps_of(pods))}")
    if len(chosen) == 1 and args.step:
        print(json.dumps(next(iter(chosen.values())), indent=2))
    else:  # a Kubernetes List, as kubectl prints several objects
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(chosen.values())}, indent=2))


def steps_of(pods):
    """The steps of these pods, in order, once each (a swept step has several pods)."""
    from .render import step_of

    return list(dict.fromkeys(map(step_of, pods)))


def with_sweep(conf, sweep, dag):
    """The form values with --sweep, checked against the DAG's own form."""
    from .render import form_schemas

    return sweep_conf(conf, sweep, form_schemas(dag)) if sweep and isinstance(conf, dict) else conf


def sweep_conf(conf, sweep, schemas):
    """The form values with --sweep: '[...]' for the job's one sweep field, or 'STEP=[...]'."""
    fields = [field for field in schemas if field == "sweep" or field.endswith("_sweep")]
    step, equals, text = sweep.partition("=") if not sweep.lstrip().startswith("[") else ("", "", sweep)
    field = f"{step.strip()}_sweep" if equals else (fields[0] if len(fields) == 1 else None)
    if not fields:
        raise UsageError(
            "this job sweeps no step. To sweep train, say: "
            """.venv/bin/cruft update -y --variables-to-update '{"sweep_steps": "train"}' (README: Sweeps)"""
        )
    if field not in fields:
        steps = ", ".join(name.removesuffix("_sweep") for name in fields)
        not_swept = f"{step.strip()} is not a swept step: " if equals else ""
        raise UsageError(
            f"{not_swept}a sweep (make: SWEEP=) is a JSON list, or STEP=<list> for one of the swept steps: {steps}; "
            f"e.g. {fields[0].removesuffix('_sweep')}={SWEEP_EXAMPLE}"
        )
    try:
        return {**conf, field: json.loads(text if equals else sweep)}
    except json.JSONDecodeError as error:
        raise UsageError(f"--sweep is not valid JSON: {error}; e.g. {SWEEP_EXAMPLE}") from None


def airflow_login(dag_id):
    from .trigger import Airflow

    missing = [name for name in ("AIRFLOW_URL", "AIRFLOW_USER", "AIRFLOW_PASSWORD") if not os.environ.get(name)]
    if missing:
        raise UsageError(f"set {', '.join(missing)} (the Airflow address and your Airflow login)")
    dag_id = dag_id or job_dag_file().stem
    return Airflow(os.environ["AIRFLOW_URL"], os.environ["AIRFLOW_USER"], os.environ["AIRFLOW_PASSWORD"], dag_id)


def say(line):
    print(line, flush=True)


def trigger(args):
    from .logs import follow_logs
    from .trigger import build_conf, checked_form

    conf = build_conf(args.conf, args.tag, args.command, args.env, args.cpu, args.memory)
    airflow = airflow_login(args.dag_id)
    schemas = airflow.form_schemas()
    conf = sweep_conf(conf, args.sweep, schemas) if args.sweep else conf
    conf = checked_form(conf, schemas)
    run_id = airflow.trigger(conf)
    print(f"Started {airflow.dag_id} run {run_id}\n{airflow.run_page(run_id)}", flush=True)
    if args.wait:
        follow_logs(airflow, run_id, timeout=args.timeout, every=args.poll, say=say)


def serve(args):
    from .dags import load_dag
    from .logs import follow_logs
    from .render import render_serving

    conf = {"action": "stop" if args.stop else "deploy"}
    conf.update({"model_uri": args.model_uri} if args.model_uri else {})
    conf.update({"image_tag": args.tag} if args.tag else {})
    dag_file = serving_dag_file()
    with contextlib.redirect_stdout(sys.stderr):  # the form is checked here, before Airflow is asked anything
        render_serving(load_dag(dag_file), conf)
    airflow = airflow_login(dag_file.stem)
    run_id = airflow.trigger(conf)
    print(f"Started {airflow.dag_id} run {run_id} ({conf['action']})\n{airflow.run_page(run_id)}", flush=True)
    if args.wait:
        follow_logs(airflow, run_id, timeout=args.timeout, every=args.poll, say=say)


def logs(args):
    from .logs import follow_logs, last_run

    airflow = airflow_login(args.dag_id)
    run_id = args.run_id or last_run(airflow)
    say(f"{airflow.dag_id} run {run_id}\n{airflow.run_page(run_id)}")
    follow_logs(airflow, run_id, step=args.step, follow=args.follow, timeout=args.timeout, every=args.poll, say=say)


def run_local(args):
    from .dags import load_dag
    from .local import container_of, local_run_id, run_pods
    from .render import pods_of_step, render_pods, step_of

    if bool(args.step) == args.all:
        raise UsageError("give one step, or --all for every step in order")
    try:
        conf = json.loads(args.conf)
    except json.JSONDecodeError as error:
        raise UsageError(f"--conf is not valid JSON: {error}") from None
    if not isinstance(conf, dict):
        raise UsageError('--conf is a JSON object, e.g. {"env": {"EPOCHS": "3"}}')
    name, colon, tag = (args.image or "").rpartition(":")
    conf.setdefault("image_tag", tag if colon and "/" not in tag else "dev")  # make build's tag by default
    run_id = args.run_id or local_run_id()
    with contextlib.redirect_stdout(sys.stderr):
        dag = load_dag(job_dag_file(args.dag))
        pods = render_pods(dag, with_sweep(conf, args.sweep, dag), run_id)
    chosen = pods if args.all else pods_of_step(pods, args.step)
    if not chosen:
        raise UsageError(f"no step {args.step!r}; the steps are: {', '.join(steps_of(pods))}")
    image = args.image or container_of(next(iter(chosen.values())))["image"]
    title = f"Run {run_id}: {', '.join(chosen)} in {image}"  # a sweep's pods one after the other, here
    code = run_pods(chosen, image, data=args.data, secrets_file=args.secrets, engine=args.engine, title=title)
    steps = steps_of(pods)
    if code == 0 and not args.all and steps[-1] != args.step:
        following = steps[steps.index(step_of(args.step)) + 1]
        print(f"Next step in the same run folder: make run STEP={following} RUN_ID={run_id}", flush=True)
    return code


def check_dag(args):
    from .dags import load_dag
    from .render import render_run

    with contextlib.redirect_stdout(sys.stderr):
        dag = load_dag(args.dag_file, args.dag_id)
        render_run(dag, {})  # a run with the form left empty: pods (or serving objects) the cluster accepts
    print(f"DAG {dag.dag_id} imports: {len(dag.tasks)} task(s)")


def sync_dag(args):
    from .sync import Release, sync_dag

    sync_dag(Release.from_environment())


def retire_dag(args):
    from .sync import Release, retire_dag

    retire_dag(Release.from_environment())


def release_version(args):
    from .rules import release_version

    print(release_version(args.tag))


def parser():
    main = argparse.ArgumentParser(prog="confiance-job", description=__doc__.splitlines()[0])
    main.add_argument("--version", action="version", version=f"confiance-job {__version__}")
    commands = main.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    command = commands.add_parser("render", help="print the pods a Trigger would start, without a cluster")
    command.add_argument("conf", nargs="?", default="{}", help="the form values as JSON (default: {})")
    command.add_argument("--step", help="only this step")
    command.add_argument("--sweep", metavar="[STEP=]JSON", help=f"a swept step's env objects, e.g. '{SWEEP_EXAMPLE}'")
    command.add_argument("--serve", action="store_true", help="the serving DAG's objects (dags/<slug>-serve.py)")
    command.add_argument("--dag", help="the DAG file (default: the one in dags/)")
    command.add_argument("--run-id", default="manual__render", help="the run id the pods get (default: %(default)s)")
    command.set_defaults(handler=render)

    command = commands.add_parser(
        "trigger", help="start a run in Airflow (AIRFLOW_URL, AIRFLOW_USER, AIRFLOW_PASSWORD)"
    )
    command.add_argument("--tag", help="image tag to run, e.g. 0.2.0 (default: the last release)")
    command.add_argument("--command", help="shell command run instead of the step's default (one-step jobs)")
    command.add_argument("--env", action="append", metavar="NAME=VALUE", help="extra environment variable")
    command.add_argument("--cpu", help="CPUs for every step of this run, e.g. 4")
    command.add_argument("--memory", help="memory for every step of this run, e.g. 16Gi")
    command.add_argument("--conf", help="other form fields, as JSON")
    command.add_argument("--sweep", metavar="[STEP=]JSON", help=f"a swept step's env objects, e.g. '{SWEEP_EXAMPLE}'")
    command.add_argument("--dag-id", help="the DAG to run (default: the one in dags/)")
    command.add_argument("--wait", action="store_true", help="follow the run's logs; exit 0 only if it succeeds")
    command.add_argument("--timeout", type=float, default=6 * 3600, help="with --wait: give up after SECONDS")
    command.add_argument("--poll", type=float, default=2, help="with --wait: ask Airflow every SECONDS")
    command.set_defaults(handler=trigger)

    command = commands.add_parser("serve", help="deploy a model with the job's serving DAG, or stop serving")
    models = "runs:/<run id>/model, models:/<name>/<version> or latest:<experiment> (default: the DAG's)"
    command.add_argument("model_uri", nargs="?", help=models)
    command.add_argument("--stop", action="store_true", help="remove what deploy made instead")
    command.add_argument("--tag", help="the image the server runs in, e.g. 0.2.0 (default: the last release)")
    command.add_argument("--wait", action="store_true", help="follow the run's logs; exit 0 only if it succeeds")
    command.add_argument("--timeout", type=float, default=3600, help="with --wait: give up after SECONDS")
    command.add_argument("--poll", type=float, default=2, help="with --wait: ask Airflow every SECONDS")
    command.set_defaults(handler=serve)

    command = commands.add_parser("logs", help="print each step's log of a run, and why a step failed")
    command.add_argument("run_id", nargs="?", help="the run (default: the last run of the DAG)")
    command.add_argument("--step", help="only this step")
    command.add_argument("--follow", action="store_true", help="until the run ends; exit 0 only if it succeeds")
    command.add_argument("--dag-id", help="the DAG (default: the one in dags/)")
    command.add_argument("--timeout", type=float, default=6 * 3600, help="with --follow: give up after SECONDS")
    command.add_argument("--poll", type=float, default=2, help="with --follow: ask Airflow every SECONDS")
    command.set_defaults(handler=logs)

    command = commands.add_parser("run", help="run a step's pod on your machine, as the DAG would (docker or podman)")
    command.add_argument("step", nargs="?", help="the step to run")
    command.add_argument("--all", action="store_true", help="every step in order, in one run folder")
    command.add_argument("--conf", default="{}", help="the Trigger form's values as JSON (default: {})")
    command.add_argument("--sweep", metavar="[STEP=]JSON", help=f"a swept step's env objects, e.g. '{SWEEP_EXAMPLE}'")
    command.add_argument("--image", help="the image to run (default: the DAG's image, tag dev: make build's)")
    command.add_argument("--engine", choices=["docker", "podman"], help="default: docker, or podman without docker")
    command.add_argument("--run-id", help="reuse a run's id and folder, e.g. to run train after prepare")
    command.add_argument("--data", default="data", help="the folder the pods see as their data (default: data)")
    command.add_argument("--secrets", default=".env.secrets", help="KEY=value lines for the pods' Secrets")
    command.add_argument("--dag", help="the DAG file (default: the one in dags/)")
    command.set_defaults(handler=run_local)

    command = commands.add_parser("check-dag", help="load a DAG file as Airflow does; fail if it does not import")
    command.add_argument("dag_file")
    command.add_argument("--dag-id", help="the one DAG id the file must define")
    command.set_defaults(handler=check_dag)

    command = commands.add_parser("sync-dag", help="the shared CI's DAG sync (reads the CI variables)")
    command.set_defaults(handler=sync_dag)

    command = commands.add_parser("retire-dag", help="the shared CI's retire job: remove the DAG from airflow-dags")
    command.set_defaults(handler=retire_dag)

    command = commands.add_parser("release-version", help="X.Y.Z of a release tag vX.Y.Z")
    command.add_argument("tag")
    command.set_defaults(handler=release_version)
    return main


def main(argv=None):
    from .dags import DagError
    from .local import LocalRunError
    from .render import ConfError
    from .sync import SyncError
    from .trigger import TriggerError

    args = parser().parse_args(argv)
    try:
        code = args.handler(args)
    except ConfError as error:
        problems = "\n".join(f"  {line}" for line in str(error).splitlines())
        print(f"{args.subcommand}: the Trigger form would refuse these values:\n{problems}", file=sys.stderr)
        return 1
    except DagError as error:
        print(f"{args.subcommand}: the DAG does not import:\n{error}", file=sys.stderr)
        return 1
    except (UsageError, TriggerError, SyncError, LocalRunError, ValueError) as error:
        print(f"{args.subcommand}: {error}", file=sys.stderr)
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
