"""Submitting a job to a deployed stack.

The stack's outputs say where and how (contract "Stack outputs the jobs CLI
reads"): ``spark_submit`` (image, master URL, network or namespace, DP_*
variables) and the secret ``platform_credentials``.

* dev: a one-shot Spark container on the stack's Docker network runs
  ``spark-submit`` in client mode against the standalone master; credentials
  are files in a private temporary directory mounted at ``/run/secrets``.
* prod: a SparkApplication (Spark Operator) is applied with kubectl and its
  status polled until it ends; credentials come from a Kubernetes Secret.

The manifests and the docker command line are built by pure functions so they
can be tested and reused by the infrastructure code.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.errors import JobError

SPARK_UID = 185
SPARK_VERSION = "4.0.1"
JOB_ENTRY = "/opt/dataplatform/jobs/run.py"
SECRETS_DIR = "/run/secrets"
DEFAULT_SECRET_NAME = "dataplatform-job-credentials"  # noqa: S105 - a name, not a value
RUN_ID_ANNOTATION = "dataplatform.io/run-id"
TAIL_LINES = 40

# Secret file name -> (environment variable naming it, platform_credentials key)
SECRET_FILES: dict[str, tuple[str, str]] = {
    "s3_access_key": ("DP_S3_ACCESS_KEY_FILE", "s3_access_key"),
    "s3_secret_key": ("DP_S3_SECRET_KEY_FILE", "s3_secret_key"),
    "redis_password": ("DP_REDIS_PASSWORD_FILE", "redis_password"),
}

TERMINAL_STATES = {"COMPLETED", "FAILED", "SUBMISSION_FAILED"}
FAILED_STATES = {"FAILED", "SUBMISSION_FAILED"}


@dataclass(frozen=True)
class SubmitOptions:
    driver_memory: str = "1g"
    executor_memory: str = "2g"
    executor_instances: int = 2
    driver_cores: int = 1
    executor_cores: int = 1
    wait_timeout: float = 3600.0
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
    def env(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.spark_submit["env"].items()}


def job_environment(target: StackTarget) -> dict[str, str]:
    """DP_* variables of the job: the stack's plain ones plus secret file paths."""
    env = target.env
    for filename, (variable, key) in SECRET_FILES.items():
        if target.credentials.get(key):
            env[variable] = f"{SECRETS_DIR}/{filename}"
    return env


def secret_values(target: StackTarget) -> dict[str, str]:
    return {
        name: str(target.credentials[key])
        for name, (_, key) in SECRET_FILES.items()
        if target.credentials.get(key)
    }


def stack_outputs(stack: str, project_dir: str | None) -> dict[str, Any]:
    command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        completed = subprocess.run(command, cwd=project_dir, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise JobError("pulumi is not on PATH") from exc
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


def docker_command(
    job: str,
    job_args: Sequence[str],
    target: StackTarget,
    *,
    secrets_dir: str,
    container_name: str,
    driver_memory: str = "1g",
    executor_memory: str = "2g",
    group_add: int | None = None,
) -> list[str]:
    """``docker run`` for a one-shot driver container on the dev network."""
    spark = target.spark_submit
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
    command += [
        str(spark["image"]),
        "spark-submit",
        "--master",
        str(spark["master_url"]),
        "--deploy-mode",
        "client",
        "--name",
        f"dataplatform-{job}",
        "--driver-memory",
        driver_memory,
        "--executor-memory",
        executor_memory,
        # Executors on the workers connect back to this container by name.
        "--conf",
        f"spark.driver.host={container_name}",
        "--conf",
        "spark.driver.bindAddress=0.0.0.0",
        JOB_ENTRY,
        job,
        *job_args,
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


def stream(command: Sequence[str], tail: collections.deque[str]) -> int:
    """Run a command, echoing its combined output and keeping the last lines."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        for line in process.stdout or ():
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))
        return process.wait()


def run_dev(job: str, job_args: Sequence[str], target: StackTarget, options: SubmitOptions) -> int:
    if shutil.which("docker") is None:
        raise JobError("docker is not on PATH")
    container = f"dp-job-{job.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
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
            driver_memory=options.driver_memory,
            executor_memory=options.executor_memory,
            group_add=group,
        )
        code = stream(command, tail)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
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


def spark_application(
    job: str,
    job_args: Sequence[str],
    target: StackTarget,
    *,
    secret_name: str,
    run_id: str,
    options: SubmitOptions = SubmitOptions(),
) -> dict[str, Any]:
    """The job's SparkApplication (sparkoperator.k8s.io/v1beta2).

    ``run_id`` lands in the driver's annotations: it changes the spec on every
    submission, which makes the operator run an existing application again.
    """
    spark = target.spark_submit
    labels = {
        "app.kubernetes.io/name": "dataplatform-job",
        "app.kubernetes.io/component": job,
        "app.kubernetes.io/part-of": "dataplatform",
    }
    env = [{"name": k, "value": v} for k, v in sorted(job_environment(target).items())]
    mounts = [{"name": "credentials", "mountPath": SECRETS_DIR, "readOnly": True}]
    security = {
        "runAsUser": SPARK_UID,
        "runAsGroup": SPARK_UID,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }

    def pod(cores: int, memory: str) -> dict[str, Any]:
        return {
            "cores": cores,
            "coreLimit": f"{cores * 1000}m",
            "memory": memory,
            "labels": dict(labels),
            "env": env,
            "volumeMounts": mounts,
            "securityContext": security,
        }

    driver = pod(options.driver_cores, options.driver_memory) | {
        "serviceAccount": str(spark["service_account"]),
        "annotations": {RUN_ID_ANNOTATION: run_id},
    }
    executor = pod(options.executor_cores, options.executor_memory) | {
        "instances": options.executor_instances,
    }
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": k8s_name(job), "namespace": str(spark["namespace"]), "labels": labels},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": str(spark["image"]),
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": f"local://{JOB_ENTRY}",
            "arguments": [job, *job_args],
            "sparkVersion": SPARK_VERSION,
            "restartPolicy": {"type": "Never"},
            "volumes": [{"name": "credentials", "secret": {"secretName": secret_name, "defaultMode": 0o440}}],
            "driver": driver,
            "executor": executor,
        },
    }


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


class Kubectl:
    def __init__(self, namespace: str) -> None:
        if shutil.which("kubectl") is None:
            raise JobError("kubectl is not on PATH")
        self.namespace = namespace

    def apply(self, *documents: Mapping[str, Any]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(documents)})
        completed = subprocess.run(
            ["kubectl", "apply", "-f", "-"], input=body, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise JobError(f"kubectl apply failed: {completed.stderr.strip()}")
        sys.stdout.write(completed.stdout)

    def get_application(self, name: str) -> dict[str, Any] | None:
        completed = subprocess.run(
            [
                "kubectl",
                "get",
                "sparkapplication",
                name,
                "-n",
                self.namespace,
                "-o",
                "json",
                "--ignore-not-found",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise JobError(f"kubectl get sparkapplication {name} failed: {completed.stderr.strip()}")
        if not completed.stdout.strip():
            return None
        resource: dict[str, Any] = json.loads(completed.stdout)
        return resource

    def driver_log_tail(self, pod: str, lines: int = TAIL_LINES) -> str:
        completed = subprocess.run(
            ["kubectl", "logs", pod, "-n", self.namespace, f"--tail={lines}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return completed.stdout if completed.returncode == 0 else ""


def wait_for_application(
    fetch: Callable[[], AppStatus],
    previous_submission: str | None,
    *,
    timeout: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
) -> AppStatus:
    """Poll until this submission reaches a terminal state or time runs out.

    A status still carrying ``previous_submission`` belongs to the run before
    this one and is ignored, so an old COMPLETED is never taken for this run's.
    """
    started = clock()
    last_state: str | None = None
    while True:
        status = fetch()
        current = status.submission_id != previous_submission or previous_submission is None
        state = status.state if current and status.state else None
        if state and state != last_state:
            report(f"[{clock() - started:7.1f}s] {state}")
            last_state = state
        if state in TERMINAL_STATES:
            return status
        if clock() - started > timeout:
            raise JobError(
                f"timed out after {timeout:.0f}s waiting for the application "
                f"(last state {last_state or 'unknown'})"
            )
        sleep(poll_seconds)


def run_prod(job: str, job_args: Sequence[str], target: StackTarget, options: SubmitOptions) -> int:
    namespace = str(target.spark_submit["namespace"])
    kubectl = Kubectl(namespace)
    name = k8s_name(job)
    documents: list[dict[str, Any]] = []
    secret_name = str(target.spark_submit.get("secret_name") or "")
    if not secret_name:
        secret_name = DEFAULT_SECRET_NAME
        documents.append(credentials_secret(namespace, secret_name, secret_values(target)))
    previous = AppStatus.from_resource(kubectl.get_application(name)).submission_id
    run_id = uuid.uuid4().hex
    documents.append(
        spark_application(job, job_args, target, secret_name=secret_name, run_id=run_id, options=options)
    )
    kubectl.apply(*documents)
    status = wait_for_application(
        lambda: AppStatus.from_resource(kubectl.get_application(name)),
        previous,
        timeout=options.wait_timeout,
        poll_seconds=options.poll_seconds,
    )
    if status.state in FAILED_STATES:
        print(f"job {job} {status.state}: {status.error or 'no error message'}", file=sys.stderr)
        if status.driver_pod:
            log = kubectl.driver_log_tail(status.driver_pod)
            if log:
                print(f"last lines of driver pod {status.driver_pod}:\n{log}", file=sys.stderr)
        return 1
    return 0


def submit(
    job: str,
    job_args: Sequence[str],
    *,
    stack: str,
    project_dir: str | None = None,
    options: SubmitOptions = SubmitOptions(),
) -> int:
    target = StackTarget.from_outputs(stack_outputs(stack, project_dir), stack)
    if target.spark_submit["tier"] == "dev":
        return run_dev(job, job_args, target, options)
    return run_prod(job, job_args, target, options)
