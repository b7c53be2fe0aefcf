"""Submitting a job to a deployed stack.

The stack's outputs say where and how (contract "Stack outputs the jobs CLI
reads"): ``spark_submit`` (image, master URL or namespace, DP_* variables,
the Spark settings and sizes the stack's own jobs use) and the secret
``platform_credentials``. Sizes given on the command line override the
stack's, one by one.

* dev: a one-shot Spark container on the stack's Docker network runs
  ``spark-submit`` in client mode against the standalone master; credentials
  are files in a private temporary directory mounted at ``/run/secrets``.
  Before it starts, the master is asked what its workers offer, and a job
  whose executors fit no worker is refused; a job that still gets no
  executor within ``schedule_timeout`` is stopped with what it asked for and
  what the cluster offers.
* prod: a SparkApplication (Spark Operator), built by the same function as
  the stack's own jobs (``jobs.launch``), is applied with kubectl and its
  status polled until it ends; a driver or executors the scheduler cannot
  place for ``schedule_timeout`` fail the job with the scheduler's reason.

A local path given as a job's input is uploaded to the stack's raw bucket
first, and the job reads it from there. Only the standard library is needed
here (and boto3 for uploads): no pyspark on the caller's machine.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs import uploads
from jobs.errors import JobError
from jobs.launch import (
    RUN_ID_ANNOTATION,
    SECRETS_DIR,
    SPARK_UID,
    SparkResources,
    memory_mib,
    spark_application,
    spark_submit_command,
)

DEFAULT_SECRET_NAME = "dataplatform-job-credentials"  # noqa: S105 - a name, not a value
TAIL_LINES = 40
# Spark repeats this warning while tasks wait for executors (TaskSchedulerImpl).
STARVATION_MARKER = "Initial job has not accepted any resources"
STARVATION_INTERVAL_SECONDS = 5.0
# Set by the Spark Operator on an application's driver and executor pods.
APP_NAME_LABEL = "sparkoperator.k8s.io/app-name"

# Environment variable naming a secret file -> platform_credentials key.
SECRET_VARIABLES: dict[str, str] = {
    "DP_S3_ACCESS_KEY_FILE": "s3_access_key",
    "DP_S3_SECRET_KEY_FILE": "s3_secret_key",
    "DP_REDIS_PASSWORD_FILE": "redis_password",
}

TERMINAL_STATES = {"COMPLETED", "FAILED", "SUBMISSION_FAILED"}
FAILED_STATES = {"FAILED", "SUBMISSION_FAILED"}


@dataclass(frozen=True)
class SubmitOptions:
    """Command-line overrides; None takes the stack's value."""

    driver_memory: str | None = None
    driver_cores: int | None = None
    executor_memory: str | None = None
    executor_cores: int | None = None
    min_executors: int | None = None
    max_executors: int | None = None
    wait_timeout: float = 3600.0
    schedule_timeout: float = 60.0
    poll_seconds: float = 5.0


@dataclass(frozen=True)
class StackTarget:
    spark_submit: Mapping[str, Any]
    credentials: Mapping[str, str]

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any], stack: str) -> StackTarget:
        spark_submit = outputs.get("spark_submit")
        credentials = outputs.get("platform_credentials")
        if not isinstance(spark_submit, Mapping) or not isinstance(credentials, Mapping):
            raise JobError(f"stack {stack} has no spark_submit/platform_credentials outputs; is it deployed?")
        tier = spark_submit.get("tier")
        per_tier = ["master_url", "network"] if tier == "dev" else ["namespace", "service_account"]
        required = ["image", "env", *per_tier]
        missing = [key for key in required if not spark_submit.get(key)]
        if tier not in ("dev", "prod") or missing:
            raise JobError(
                f"stack {stack}: spark_submit output is incomplete (tier={tier!r}, missing {missing})"
            )
        return cls(spark_submit, credentials)

    @property
    def tier(self) -> str:
        return str(self.spark_submit["tier"])

    @property
    def env(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.spark_submit["env"].items()}

    @property
    def conf(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.spark_submit.get("conf") or {}).items()}

    def resources(self, options: SubmitOptions = SubmitOptions()) -> SparkResources:
        """The stack's job sizes with the command line's overrides applied."""
        try:
            stack = SparkResources.from_output(self.spark_submit.get("resources") or {})
            return stack.override(
                driver_cores=options.driver_cores,
                driver_memory_mib=memory_mib(options.driver_memory) if options.driver_memory else None,
                executor_cores=options.executor_cores,
                executor_memory_mib=memory_mib(options.executor_memory) if options.executor_memory else None,
                min_executors=options.min_executors,
                max_executors=options.max_executors,
            )
        except ValueError as exc:
            raise JobError(str(exc)) from None


def secret_files(target: StackTarget) -> dict[str, tuple[str, str]]:
    """Secret file name -> (environment variable, value), at the paths the
    stack's own jobs read them from."""
    env = target.env
    files: dict[str, tuple[str, str]] = {}
    for variable, key in SECRET_VARIABLES.items():
        value = target.credentials.get(key)
        if value:
            path = env.get(variable) or f"{SECRETS_DIR}/{key}"
            files[os.path.basename(path)] = (variable, str(value))
    return files


def job_environment(target: StackTarget) -> dict[str, str]:
    """DP_* variables of the job: the stack's plain ones plus secret file paths."""
    env = target.env
    for name, (variable, _) in secret_files(target).items():
        env[variable] = f"{SECRETS_DIR}/{name}"
    return env


def secret_values(target: StackTarget) -> dict[str, str]:
    return {name: value for name, (_, value) in secret_files(target).items()}


def stack_outputs(stack: str, project_dir: str | None) -> dict[str, Any]:
    command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        completed = subprocess.run(command, cwd=project_dir, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise JobError(
            "pulumi is not on PATH (after `make up`, run: source ~/.cache/dataplatform/env.sh)"
        ) from exc
    if completed.returncode != 0:
        raise JobError(f"pulumi stack output failed for stack {stack}: {completed.stderr.strip()}")
    try:
        outputs: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        raise JobError(f"pulumi stack output returned invalid JSON: {exc}") from exc
    return outputs


def k8s_name(job: str) -> str:
    return "dp-" + job.replace("_", "-")


# --------------------------------------------------------------------- dev


@dataclass(frozen=True)
class Worker:
    id: str
    cores: int
    cores_free: int
    memory_mib: int
    memory_free_mib: int


def standalone_workers(master_ui_url: str, timeout: float = 5.0) -> list[Worker] | None:
    """Alive workers of a standalone master (its UI's JSON), or None if the
    UI cannot be reached from here."""
    url = master_ui_url.rstrip("/") + "/json/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the stack's own URL
            state = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return [
        Worker(
            id=str(w.get("id", "?")),
            cores=int(w.get("cores", 0)),
            cores_free=int(w.get("coresfree", 0)),
            memory_mib=int(w.get("memory", 0)),
            memory_free_mib=int(w.get("memoryfree", 0)),
        )
        for w in state.get("workers", [])
        if w.get("state") == "ALIVE"
    ]


def describe_workers(workers: Sequence[Worker]) -> str:
    if not workers:
        return "no alive worker"
    parts = [
        f"{w.id.split('-')[-2] if w.id.count('-') >= 2 else w.id}: {w.cores} cores/{w.memory_mib} MiB "
        f"({w.cores_free} cores/{w.memory_free_mib} MiB free)"
        for w in workers
    ]
    return f"{len(workers)} alive worker(s): " + "; ".join(parts)


def check_fits(resources: SparkResources, workers: Sequence[Worker] | None) -> None:
    """Refuse a job whose executors fit no worker: it would wait for ever."""
    if workers is None:
        return
    asked = f"executors of {resources.executor_cores} core(s) and {resources.executor_memory_mib} MiB"
    if not workers:
        raise JobError(f"the job asks for {asked}, but the Spark master has no alive worker")
    if not any(
        w.cores >= resources.executor_cores and w.memory_mib >= resources.executor_memory_mib for w in workers
    ):
        raise JobError(
            f"the job asks for {asked}, which fit no worker: the cluster offers {describe_workers(workers)}; "
            "ask for less (--executor-memory, --executor-cores) or give the workers more "
            "(dataplatform:spark.workerMemory, spark.workerCores)"
        )


def docker_command(
    job: str,
    job_args: Sequence[str],
    target: StackTarget,
    *,
    secrets_dir: str,
    container_name: str,
    resources: SparkResources | None = None,
    group_add: int | None = None,
) -> list[str]:
    """``docker run`` for a one-shot driver container on the dev network."""
    spark = target.spark_submit
    sizes = resources or target.resources()
    command = [
        "docker",
        "run",
        "--rm",
        "--init",
        "--name",
        container_name,
        "--network",
        str(spark["network"]),
        "--user",
        str(SPARK_UID),
        "--read-only",
        "--tmpfs",
        "/tmp",  # noqa: S108 - the container's own tmpfs
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        f"{secrets_dir}:{SECRETS_DIR}:ro",
        "-e",
        "HOME=/tmp",
    ]
    if group_add is not None:
        command += ["--group-add", str(group_add)]
    for key, value in sorted(job_environment(target).items()):
        command += ["-e", f"{key}={value}"]
    conf = {**target.conf, "spark.starvation.timeout": f"{round(STARVATION_INTERVAL_SECONDS * 1000)}ms"}
    command += [
        str(spark["image"]),
        *spark_submit_command(
            str(spark["master_url"]), job, job_args, conf, sizes, driver_host=container_name
        ),
    ]
    return command


def write_secret_files(directory: str, values: Mapping[str, str]) -> int | None:
    """Write secrets readable by the container's user only.

    As root, files are chowned to the Spark user and kept 0600. Otherwise they
    stay the caller's, readable by the caller's group (0640), and the
    container joins that group; returns the group to add, if any.
    """
    as_root = os.geteuid() == 0
    mode = 0o600 if as_root else 0o640
    for name, value in values.items():
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        if as_root:
            os.chown(path, SPARK_UID, SPARK_UID)
    if as_root:
        os.chown(directory, SPARK_UID, SPARK_UID)
        os.chmod(directory, 0o500)
        return None
    os.chmod(directory, 0o750)  # noqa: S103 - group is the caller's own, joined by the container
    return os.getegid()


class StarvationWatch:
    """Notices a driver that has waited too long for its first executors.

    Spark warns every ``interval`` seconds while a task set waits for
    resources, the first time ``interval`` seconds after it was submitted. A
    gap of two intervals without the warning means executors came.
    """

    def __init__(self, limit: float, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.interval, self.clock = limit, interval, clock
        self.since: float | None = None
        self.last: float | None = None

    def line(self, text: str) -> None:
        if STARVATION_MARKER not in text:
            return
        now = self.clock()
        if self.last is None or now - self.last > 2 * self.interval:
            self.since = now - self.interval
        self.last = now

    def waited(self) -> float:
        """Seconds the job has been waiting for executors, 0 if it is not."""
        if self.since is None or self.last is None:
            return 0.0
        now = self.clock()
        if now - self.last > 2 * self.interval:
            return 0.0
        return now - self.since

    def starved(self) -> bool:
        return self.waited() >= self.limit


def stream(
    command: Sequence[str],
    tail: collections.deque[str],
    watch: StarvationWatch | None = None,
    on_starved: Callable[[], None] | None = None,
) -> int:
    """Run a command, echoing its combined output and keeping the last lines;
    ``on_starved`` is called once if ``watch`` says the job starves."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        fired = threading.Event()

        def check() -> None:
            while process.poll() is None and not fired.is_set():
                if watch is not None and watch.starved():
                    fired.set()
                    if on_starved is not None:
                        on_starved()
                    return
                time.sleep(0.5)

        checker = threading.Thread(target=check, daemon=True)
        checker.start()
        for line in process.stdout or ():
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))
            if watch is not None:
                watch.line(line)
        code = process.wait()
        fired.set()
        return code


def run_dev(job: str, job_args: Sequence[str], target: StackTarget, options: SubmitOptions) -> int:
    if shutil.which("docker") is None:
        raise JobError("docker is not on PATH")
    resources = target.resources(options)
    master_ui = str(target.spark_submit.get("master_ui_url") or "")
    workers = standalone_workers(master_ui) if master_ui else None
    check_fits(resources, workers)
    job_args = uploads.stage_local_inputs(job, job_args, target.spark_submit, target.credentials)
    container = f"dp-job-{job.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    watch = StarvationWatch(options.schedule_timeout, STARVATION_INTERVAL_SECONDS)
    starved: list[str] = []

    def stop_starved() -> None:
        offered = standalone_workers(master_ui) if master_ui else None
        starved.append(
            f"job {job} got no executor in {options.schedule_timeout:.0f} s: it asks for executors of "
            f"{resources.executor_cores} core(s) and {resources.executor_memory_mib} MiB; the cluster offers "
            + (describe_workers(offered) if offered is not None else "(the master's UI cannot be reached)")
            + "; other applications may hold the workers"
        )
        subprocess.run(["docker", "kill", container], capture_output=True, check=False)

    parent = tempfile.mkdtemp(prefix="dp-job-")
    try:
        secrets_dir = os.path.join(parent, "secrets")
        os.mkdir(secrets_dir, 0o700)
        group = write_secret_files(secrets_dir, secret_values(target))
        # Traversable by the container's user only (see write_secret_files).
        os.chmod(parent, 0o750 if group is not None else 0o711)
        command = docker_command(
            job,
            job_args,
            target,
            secrets_dir=secrets_dir,
            container_name=container,
            resources=resources,
            group_add=group,
        )
        print(f"submitting {job} to {target.spark_submit['master_url']}: {resources.describe()}")
        code = stream(command, tail, watch, stop_starved)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    if starved:
        raise JobError(starved[0])
    if code != 0:
        print(f"\njob {job} failed: container exited with code {code}; last lines:", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
    return code


# -------------------------------------------------------------------- prod


def credentials_secret(namespace: str, name: str, values: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "dataplatform"},
        },
        "stringData": dict(values),
    }


def application(
    job: str,
    job_args: Sequence[str],
    target: StackTarget,
    *,
    secret_name: str,
    run_id: str,
    resources: SparkResources | None = None,
) -> dict[str, Any]:
    """The job's SparkApplication: the stack's own job builder, run once.

    ``run_id`` lands in the driver's annotations: it changes the spec on every
    submission, which makes the operator run an existing application again.
    """
    spark = target.spark_submit
    return spark_application(
        k8s_name(job),
        job,
        job_args,
        image=str(spark["image"]),
        env=job_environment(target),
        secret_name=secret_name,
        conf=target.conf,
        resources=resources or target.resources(),
        namespace=str(spark["namespace"]),
        retries=0,
        labels={"app.kubernetes.io/component": job},
        driver_annotations={RUN_ID_ANNOTATION: run_id},
    )


@dataclass(frozen=True)
class AppStatus:
    submission_id: str | None
    state: str | None
    error: str | None
    driver_pod: str | None

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any] | None) -> AppStatus:
        status = (resource or {}).get("status") or {}
        state = status.get("applicationState") or {}
        return cls(
            submission_id=status.get("submissionID"),
            state=state.get("state"),
            error=state.get("errorMessage"),
            driver_pod=(status.get("driverInfo") or {}).get("podName"),
        )


@dataclass(frozen=True)
class PodState:
    name: str
    role: str
    phase: str
    unschedulable: str | None  # the scheduler's message while it cannot place the pod

    @classmethod
    def from_resource(cls, pod: Mapping[str, Any]) -> PodState:
        metadata = pod.get("metadata") or {}
        status = pod.get("status") or {}
        reason = None
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                reason = str(condition.get("message") or "Unschedulable")
        return cls(
            name=str(metadata.get("name", "?")),
            role=str((metadata.get("labels") or {}).get("spark-role", "?")),
            phase=str(status.get("phase", "?")),
            unschedulable=reason,
        )


class Kubectl:
    def __init__(self, namespace: str) -> None:
        if shutil.which("kubectl") is None:
            raise JobError("kubectl is not on PATH")
        self.namespace = namespace

    def _run(self, args: Sequence[str], what: str, stdin: str | None = None) -> str:
        completed = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise JobError(f"kubectl {what} failed: {completed.stderr.strip()}")
        return completed.stdout

    def apply(self, *documents: Mapping[str, Any]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(documents)})
        sys.stdout.write(self._run(["apply", "-f", "-"], "apply", stdin=body))

    def get_application(self, name: str) -> dict[str, Any] | None:
        out = self._run(
            ["get", "sparkapplication", name, "-n", self.namespace, "-o", "json", "--ignore-not-found"],
            f"get sparkapplication {name}",
        )
        if not out.strip():
            return None
        resource: dict[str, Any] = json.loads(out)
        return resource

    def application_pods(self, name: str) -> list[PodState]:
        out = self._run(
            ["get", "pods", "-n", self.namespace, "-o", "json", "-l", f"{APP_NAME_LABEL}={name}"],
            "get pods",
        )
        return [PodState.from_resource(pod) for pod in json.loads(out).get("items", [])]

    def delete_application(self, name: str) -> None:
        self._run(
            ["delete", "sparkapplication", name, "-n", self.namespace, "--ignore-not-found", "--wait=false"],
            f"delete sparkapplication {name}",
        )

    def driver_log_tail(self, pod: str, lines: int = TAIL_LINES) -> str:
        return self.driver_log(pod, tail=lines)

    def driver_log(self, pod: str, tail: int | None = None) -> str:
        command = ["kubectl", "logs", pod, "-n", self.namespace]
        if tail is not None:
            command.append(f"--tail={tail}")
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        return completed.stdout if completed.returncode == 0 else ""


class SchedulingError(JobError):
    """The application's pods cannot be placed; it would never run."""


class SchedulingWatch:
    """Tells when an application cannot get its pods placed.

    Stuck means: the operator has not taken the application up, its driver
    cannot be scheduled, or the driver runs but none of its executors can be,
    for ``limit`` seconds in a row.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.stuck_since: float | None = None

    def problem(self, state: str | None, pods: Sequence[PodState]) -> str | None:
        driver = [p for p in pods if p.role == "driver"]
        executors = [p for p in pods if p.role == "executor"]
        if state in (None, "", "NEW"):
            return (
                "the Spark Operator has not taken the application up "
                "(is it installed and watching this namespace?)"
            )
        for pod in driver:
            if pod.unschedulable:
                return f"the driver pod cannot be scheduled: {pod.unschedulable}"
        if executors and all(p.unschedulable for p in executors):
            return f"no executor pod can be scheduled: {executors[0].unschedulable}"
        return None

    def check(self, now: float, state: str | None, pods: Sequence[PodState]) -> str | None:
        """The problem, once it has lasted ``limit`` seconds."""
        problem = self.problem(state, pods)
        if problem is None:
            self.stuck_since = None
            return None
        if self.stuck_since is None:
            self.stuck_since = now
        return problem if now - self.stuck_since >= self.limit else None


def wait_for_application(
    fetch: Callable[[], AppStatus],
    previous_submission: str | None,
    *,
    timeout: float,
    poll_seconds: float,
    pods: Callable[[], Sequence[PodState]] | None = None,
    schedule_timeout: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
) -> AppStatus:
    """Poll until this submission reaches a terminal state, cannot be
    scheduled for ``schedule_timeout`` seconds, or ``timeout`` runs out.

    A status still carrying ``previous_submission`` belongs to the run before
    this one and is ignored, so an old COMPLETED is never taken for this run's.
    """
    started = clock()
    last_state: str | None = None
    watch = SchedulingWatch(schedule_timeout)
    while True:
        status = fetch()
        current = status.submission_id != previous_submission or previous_submission is None
        state = status.state if current and status.state else None
        if state and state != last_state:
            report(f"[{clock() - started:7.1f}s] {state}")
            last_state = state
        if state in TERMINAL_STATES:
            return status
        if pods is not None and state not in TERMINAL_STATES:
            problem = watch.check(clock(), state, pods() if state else [])
            if problem:
                raise SchedulingError(f"{problem} (for {schedule_timeout:.0f} s; state {state or 'none'})")
        if clock() - started > timeout:
            raise JobError(
                f"timed out after {timeout:.0f}s waiting for the application "
                f"(last state {last_state or 'unknown'})"
            )
        sleep(poll_seconds)


def run_prod(job: str, job_args: Sequence[str], target: StackTarget, options: SubmitOptions) -> int:
    namespace = str(target.spark_submit["namespace"])
    kubectl = Kubectl(namespace)
    resources = target.resources(options)
    job_args = uploads.stage_local_inputs(job, job_args, target.spark_submit, target.credentials)
    name = k8s_name(job)
    documents: list[dict[str, Any]] = []
    secret_name = str(target.spark_submit.get("secret_name") or "")
    if not secret_name:
        secret_name = DEFAULT_SECRET_NAME
        documents.append(credentials_secret(namespace, secret_name, secret_values(target)))
    previous = AppStatus.from_resource(kubectl.get_application(name)).submission_id
    run_id = uuid.uuid4().hex
    documents.append(
        application(job, job_args, target, secret_name=secret_name, run_id=run_id, resources=resources)
    )
    print(f"submitting {job} to namespace {namespace}: {resources.describe()}")
    kubectl.apply(*documents)
    try:
        status = wait_for_application(
            lambda: AppStatus.from_resource(kubectl.get_application(name)),
            previous,
            timeout=options.wait_timeout,
            poll_seconds=options.poll_seconds,
            pods=lambda: kubectl.application_pods(name),
            schedule_timeout=options.schedule_timeout,
        )
    except SchedulingError as exc:
        # Nothing would ever run it: take it off the cluster before reporting.
        kubectl.delete_application(name)
        raise JobError(f"job {job} asked for {resources.describe()}; {exc}") from None
    if status.state in FAILED_STATES:
        print(f"job {job} {status.state}: {status.error or 'no error message'}", file=sys.stderr)
        if status.driver_pod:
            log = kubectl.driver_log_tail(status.driver_pod)
            if log:
                print(f"last lines of driver pod {status.driver_pod}:\n{log}", file=sys.stderr)
        return 1
    # What the job printed (event_counts' counts, train's summary) is in the
    # driver's log among Spark's own lines; show it as a dev run would.
    if status.driver_pod:
        for line in job_output(kubectl.driver_log(status.driver_pod)):
            print(line)
    return 0


# Spark's log4j lines ("2026-01-01T00:00:00.000Z INFO Logger: ..."), the
# JVM's and SLF4J's warnings, exceptions and stack frames: everything in a
# driver log that the job did not print itself.
_SPARK_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\S+ (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) |WARNING: |SLF4J: |\s+at |Caused by: "
    r"|\s*\.\.\. \d+ more|[a-z][\w$]*(\.[\w$]+)*\.[A-Z][\w$]*(Exception|Error)\b)"
)


def job_output(log: str) -> list[str]:
    """The lines of a driver log the job itself printed."""
    return [line for line in log.splitlines() if line.strip() and not _SPARK_LOG_LINE.match(line)]


def submit(
    job: str,
    job_args: Sequence[str],
    *,
    stack: str,
    project_dir: str | None = None,
    options: SubmitOptions = SubmitOptions(),
) -> int:
    uploads.check_outputs(job, job_args)
    target = StackTarget.from_outputs(stack_outputs(stack, project_dir), stack)
    if target.tier == "dev":
        return run_dev(job, job_args, target, options)
    return run_prod(job, job_args, target, options)
