"""Command line: run a job locally, under spark-submit, or submit it to a stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.conventions import LANDING_PREFIX
from jobs.definitions import JOBS, keywords
from jobs.errors import JobError

LOCAL_MASTER = "local[*]"
# The `submit` flags that become SubmitOptions, under the same names.
SUBMIT_OPTIONS = (
    "driver_memory",
    "driver_cores",
    "executor_memory",
    "executor_cores",
    "min_executors",
    "max_executors",
    "wait_timeout",
    "schedule_timeout",
    "poll_seconds",
)


def execute(job_name: str, argv: Sequence[str], *, master: str | None = None) -> int:
    """Parse the job's arguments, check services, run it; returns an exit code.

    ``master`` is None under spark-submit, which supplies it.
    """
    # Spark is needed to run a job, not to list or submit one.
    from jobs.config import Settings, check_s3
    from jobs.session import build_session

    job = JOBS[job_name]
    args = job.parser(prog=f"{job_name}").parse_args(list(argv))
    try:
        settings = Settings.from_env()
        # The session itself may touch the store (event logs), so check first.
        if settings.s3 is not None:
            check_s3(settings.s3)
        spark = build_session(f"dataplatform-{job_name}", settings, master=master)
        try:
            job.run(spark, settings, args)
        finally:
            spark.stop()
    except JobError as exc:
        print(f"error: {job_name}: {exc}", file=sys.stderr)
        return 2
    return 0


def spark_submit_main(argv: Sequence[str]) -> int:
    """Entry point of ``spark-submit run.py <job> [args]``."""
    if not argv or argv[0] not in JOBS:
        print(f"usage: run.py {{{','.join(JOBS)}}} [args]", file=sys.stderr)
        return 64
    return execute(argv[0], argv[1:])


def stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Which stack: ``--stack`` (with ``--project-dir``) or ``--outputs``."""
    where = parser.add_argument_group(
        "stack",
        "the stack's outputs say where the job runs: on prod the cluster, kubeconfig context and "
        "namespace the stack was deployed with (never kubectl's current context), on dev its "
        "Docker host and network",
    )
    where.add_argument(
        "--stack",
        default=None,
        help="Pulumi stack whose outputs to read with `pulumi stack output` (dev, prod or any stack "
        "of the program in --project-dir); with --outputs, only a name for messages",
    )
    source = where.add_mutually_exclusive_group()
    source.add_argument(
        "--project-dir",
        "--cwd",
        dest="project_dir",
        default=None,
        metavar="DIR",
        help="directory of the Pulumi program that deployed the stack (its Pulumi.yaml), "
        "e.g. another project that uses the dataplatform library (default: the current directory); "
        "relative paths the stack recorded are taken from there",
    )
    source.add_argument(
        "--outputs",
        dest="outputs_file",
        default=None,
        metavar="FILE",
        help="read the stack's outputs from FILE, saved with `pulumi stack output --json "
        "--show-secrets` ('-': standard input), instead of running pulumi",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs",
        description="Run the data platform's Spark jobs locally or on a deployed stack.",
        epilog="jobs: "
        + "; ".join(f"{j.name}: {j.summary}" for j in JOBS.values())
        + ". Use 'python -m jobs run <job> --help' for a job's arguments.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    commands.add_parser("list", help="list the jobs")

    run = commands.add_parser("run", help="run a job here with a local Spark master")
    run.add_argument("--master", default=LOCAL_MASTER, help=f"Spark master (default {LOCAL_MASTER})")
    run.add_argument("job", choices=sorted(JOBS))
    run.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's arguments")

    submit = commands.add_parser(
        "submit",
        help="run a job on a stack (dev: one-shot container; prod: SparkApplication)",
        description="Arguments not listed here are passed to the job.",
        # The job's own options pass through: --output must not be taken for --outputs.
        allow_abbrev=False,
    )
    submit.add_argument("job", choices=sorted(JOBS))
    stack_arguments(submit)
    submit.add_argument(
        "--wait-timeout",
        type=float,
        default=3600.0,
        help="seconds the job may run before submit gives up (default 3600)",
    )
    submit.add_argument(
        "--schedule-timeout",
        type=float,
        default=60.0,
        help="seconds a job may wait for its first executor (dev) or for its pods to be "
        "scheduled (prod) before submit fails with the reason (default 60)",
    )
    submit.add_argument("--poll-seconds", type=float, default=5.0, help="prod: status poll interval")
    sizes = submit.add_argument_group(
        "resources", "default: what the stack's own jobs ask for (dataplatform:spark)"
    )
    sizes.add_argument("--driver-memory", help="driver heap, e.g. 768m or 1g")
    sizes.add_argument("--driver-cores", type=int)
    sizes.add_argument("--executor-memory", help="executor heap, e.g. 768m or 1g")
    sizes.add_argument("--executor-cores", type=int)
    sizes.add_argument("--min-executors", type=int)
    sizes.add_argument("--max-executors", type=int)
    ingest = commands.add_parser(
        "ingest",
        help="land event files on a stack, for the features_stream job",
        description="Upload JSON-lines event files to the stack's landing prefix "
        f"(s3a://<raw bucket>/{LANDING_PREFIX}/), each under a name of its own; the features_stream "
        "job takes each one once, or moves it to quarantine with the reason.",
    )
    ingest.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines event files")
    stack_arguments(ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["submit"]:
        args, job_argv = parser.parse_known_args(argv)
    else:
        args = parser.parse_args(argv)
        job_argv = list(getattr(args, "job_args", []) or [])

    if args.command == "list":
        width = max(len(name) for name in JOBS)
        for job in JOBS.values():
            print(f"{job.name:{width}} {job.summary}")
        return 0
    if args.command == "run":
        return execute(args.job, job_argv, master=args.master)

    if args.stack is None and args.outputs_file is None:
        parser.error(f"{args.command}: give --stack NAME (read with pulumi) or --outputs FILE")
    if args.command == "ingest":
        from jobs import stack_outputs, uploads

        try:
            # Before the stack's outputs are read: a mistyped path fails at once.
            uploads.require_files(args.files)
            target = stack_outputs.read_target(args.stack, args.project_dir, args.outputs_file)
            uploads.ingest(args.files, target)
        except JobError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    # Validate the job's arguments here rather than minutes later in a driver.
    JOBS[args.job].parser(prog=f"python -m jobs submit {args.job}").parse_args(job_argv)
    # Deferred: only submission needs subprocess plumbing.
    from jobs.stack_outputs import SubmitOptions
    from jobs.submit import submit

    options = SubmitOptions(**keywords(args, *SUBMIT_OPTIONS))
    try:
        return submit(
            args.job,
            job_argv,
            stack=args.stack,
            project_dir=args.project_dir,
            outputs_file=args.outputs_file,
            options=options,
        )
    except JobError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
