"""Running a submitted job on the prod stack's Kubernetes cluster, as a SparkApplication.

The application (Spark Operator) is built by the same function as the
stack's own jobs (``jobs.launch``), applied with kubectl on the cluster and
context the stack recorded (never kubectl's current context) and its status
polled until it ends; a driver or executors the scheduler cannot place for
``schedule_timeout`` fail the job with the scheduler's reason, and the
application is deleted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs import uploads
from jobs.conventions import PART_OF, RUN_ID_ANNOTATION
from jobs.errors import JobError
from jobs.launch import SparkResources, spark_application
from jobs.stack_outputs import KubeAccess, StackTarget, SubmitOptions, job_environment, secret_values

DEFAULT_SECRET_NAME = "dataplatform-job-credentials"  # noqa: S105 - a name, not a value
# Set by the Spark Operator on an application's driver and executor pods.
APP_NAME_LABEL = "sparkoperator.k8s.io/app-name"

TERMINAL_STATES = {"COMPLETED", "FAILED", "SUBMISSION_FAILED"}
FAILED_STATES = {"FAILED", "SUBMISSION_FAILED"}


def k8s_name(job: str) -> str:
    return "dp-" + job.replace("_", "-")


def credentials_secret(namespace: str, name: str, values: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF)},
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
    """kubectl on the stack's own cluster: every call names the context (and
    kubeconfig) the stack recorded and the namespace, never the current context."""

    def __init__(self, access: KubeAccess, namespace: str) -> None:
        if shutil.which("kubectl") is None:
            raise JobError("kubectl is not on PATH")
        self.access = access
        self.namespace = namespace

    def command(self, *args: str) -> list[str]:
        return self.access.kubectl(self.namespace, *args)

    def _run(self, args: Sequence[str], what: str, stdin: str | None = None) -> str:
        completed = subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            env=self.access.environment(),
        )
        if completed.returncode != 0:
            raise JobError(f"kubectl {what} ({self.access.describe()}) failed: {completed.stderr.strip()}")
        return completed.stdout

    def apply(self, *documents: Mapping[str, Any]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(documents)})
        sys.stdout.write(self._run(["apply", "-f", "-"], "apply", stdin=body))

    def get_application(self, name: str) -> dict[str, Any] | None:
        out = self._run(
            ["get", "sparkapplication", name, "-o", "json", "--ignore-not-found"],
            f"get sparkapplication {name}",
        )
        if not out.strip():
            return None
        resource: dict[str, Any] = json.loads(out)
        return resource

    def application_pods(self, name: str) -> list[PodState]:
        out = self._run(["get", "pods", "-o", "json", "-l", f"{APP_NAME_LABEL}={name}"], "get pods")
        return [PodState.from_resource(pod) for pod in json.loads(out).get("items", [])]

    def delete_application(self, name: str) -> None:
        self._run(
            ["delete", "sparkapplication", name, "--ignore-not-found", "--wait=false"],
            f"delete sparkapplication {name}",
        )

    def driver_log(self, pod: str, tail: int | None = None) -> str:
        args = ["logs", pod]
        if tail is not None:
            args.append(f"--tail={tail}")
        completed = subprocess.run(
            self.command(*args), capture_output=True, text=True, check=False, env=self.access.environment()
        )
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


def run(job: str, job_args: Sequence[str], target: StackTarget, options: SubmitOptions) -> int:
    """Run the job to its end; returns 0 when it completed, 1 when it failed."""
    access = target.kube()
    namespace = target.jobs_namespace()
    kubectl = Kubectl(access, namespace)
    resources = target.resources(options)
    job_args = uploads.stage_local_inputs(job, job_args, target.spark_submit, target.credentials, kube=access)
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
    print(f"submitting {job} to namespace {namespace} ({access.describe()}): {resources.describe()}")
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
            log = kubectl.driver_log(status.driver_pod, tail=options.tail_lines)
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
