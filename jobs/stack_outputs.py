"""A deployed stack's outputs (from pulumi or a saved file) as the settings a submitted job runs with.

The stack says where and how (contract "Stack outputs the jobs CLI reads"):
``spark_submit`` (tier, image, master URL or namespace, DP_* variables, the
Spark settings and sizes the stack's own jobs use), the secret
``platform_credentials``, and where it was deployed: ``kubernetes`` (prod:
kubeconfig context and file, namespace) or ``docker`` (dev: Docker host and
name prefix). Nothing here falls back on kubectl's current context. Sizes
given on the command line override the stack's, one by one. Standard library
only: no pyspark on the caller's machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobs.conventions import SECRETS_DIR
from jobs.errors import JobError
from jobs.launch import SparkResources
from jobs.quantity import memory_mib

# Environment variable naming a secret file -> platform_credentials key.
SECRET_VARIABLES: dict[str, str] = {
    "DP_S3_ACCESS_KEY_FILE": "s3_access_key",
    "DP_S3_SECRET_KEY_FILE": "s3_secret_key",
    "DP_REDIS_PASSWORD_FILE": "redis_password",
}


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
    # Enough of the driver's output to show why a job failed, on either tier.
    tail_lines: int = 40


REDEPLOY = "deploy the stack again with the current dataplatform library (pulumi up)"
# What `pulumi stack output --json` prints for a secret without --show-secrets.
HIDDEN_SECRET = "[secret]"  # noqa: S105 - a placeholder, not a value


@dataclass(frozen=True)
class KubeAccess:
    """The cluster a prod stack was deployed to: every kubectl call names it.

    ``context`` is the kubeconfig context the stack deployed with;
    ``kubeconfig`` the file it came from (``--kubeconfig``), or None for
    kubectl's default (KUBECONFIG or ~/.kube/config), still with
    ``--context``. A KUBECONFIG-style list of files, which ``--kubeconfig``
    does not take, is handed to kubectl as KUBECONFIG instead.
    """

    context: str
    kubeconfig: str | None
    namespace: str

    @property
    def _file_list(self) -> bool:
        return bool(self.kubeconfig) and os.pathsep in str(self.kubeconfig)

    def kubectl(self, namespace: str, *args: str) -> list[str]:
        """``kubectl --context CTX [--kubeconfig PATH] -n NAMESPACE ARGS...``."""
        command = ["kubectl", "--context", self.context]
        if self.kubeconfig and not self._file_list:
            command += ["--kubeconfig", self.kubeconfig]
        return [*command, "-n", namespace, *args]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a kubectl call (KUBECONFIG only for a list of files)."""
        env = dict(os.environ if base is None else base)
        if self._file_list:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def describe(self) -> str:
        where = f"context {self.context}"
        return f"{where} of {self.kubeconfig}" if self.kubeconfig else where


@dataclass(frozen=True)
class DockerAccess:
    """The Docker engine a dev stack was deployed to and the prefix of its names."""

    host: str | None
    prefix: str

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a docker CLI call: DOCKER_HOST set to the stack's host, if it names one."""
        env = dict(os.environ if base is None else base)
        if self.host:
            env["DOCKER_HOST"] = self.host
            # DOCKER_HOST wins over a docker context anyway; drop it so no reader is misled.
            env.pop("DOCKER_CONTEXT", None)
        return env


@dataclass(frozen=True)
class StackTarget:
    spark_submit: Mapping[str, Any]
    credentials: Mapping[str, str]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    stack: str = "?"
    # Where a relative kubeconfig path recorded by the stack is taken from
    # (the deploying program's directory); None: the current directory.
    base_dir: str | None = None

    @classmethod
    def from_outputs(
        cls, outputs: Mapping[str, Any], stack: str, *, base_dir: str | None = None
    ) -> StackTarget:
        spark_submit = outputs.get("spark_submit")
        credentials = outputs.get("platform_credentials")
        if credentials == HIDDEN_SECRET:
            raise JobError(
                f"stack {stack}: platform_credentials is hidden; "
                "read the outputs with `pulumi stack output --json --show-secrets`"
            )
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
        return cls(spark_submit, credentials, outputs, stack, base_dir)

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

    def kube(self) -> KubeAccess:
        """The cluster, context and namespace a prod stack recorded (output ``kubernetes``)."""
        recorded = self.outputs.get("kubernetes")
        if not isinstance(recorded, Mapping):
            raise JobError(
                f"stack {self.stack} does not say which Kubernetes cluster it runs on "
                f"(no `kubernetes` output); {REDEPLOY}"
            )
        context = recorded.get("context")
        if not context:
            raise JobError(
                f"stack {self.stack} recorded no kubeconfig context, and the current one is not "
                f"used in its place; configure the stack's Kubernetes context and {REDEPLOY}"
            )
        namespace = str(recorded.get("namespace") or self.spark_submit.get("namespace") or "")
        if not namespace:
            raise JobError(f"stack {self.stack}: the `kubernetes` output names no namespace; {REDEPLOY}")
        kubeconfig = recorded.get("kubeconfig")
        path: str | None = None
        if kubeconfig:
            files = [self._local_path(part) for part in str(kubeconfig).split(os.pathsep) if part]
            if not any(os.path.isfile(file) for file in files):
                raise JobError(
                    f"stack {self.stack} was deployed with kubeconfig {kubeconfig}, which is not a file "
                    f"here ({os.pathsep.join(os.path.abspath(file) for file in files)})"
                )
            path = os.pathsep.join(files)
        return KubeAccess(context=str(context), kubeconfig=path, namespace=namespace)

    def _local_path(self, path: str) -> str:
        """A path the stack recorded, as seen from here: relative ones are
        relative to the deploying program's directory when it is known."""
        path = os.path.expanduser(path)
        if not os.path.isabs(path) and self.base_dir:
            path = os.path.join(self.base_dir, path)
        return path

    def jobs_namespace(self) -> str:
        """Where the stack's jobs run: ``spark_submit.namespace``."""
        return str(self.spark_submit.get("namespace") or self.kube().namespace)

    def docker(self) -> DockerAccess:
        """The Docker host and name prefix a dev stack recorded (output ``docker``)."""
        recorded = self.outputs.get("docker")
        if not isinstance(recorded, Mapping) or not recorded.get("prefix"):
            raise JobError(
                f"stack {self.stack} does not say which Docker engine it runs on "
                f"(no `docker` output with a prefix); {REDEPLOY}"
            )
        host = recorded.get("host")
        return DockerAccess(host=str(host) if host else None, prefix=str(recorded["prefix"]))


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


def pulumi_outputs(stack: str, project_dir: str | None) -> dict[str, Any]:
    """``pulumi stack output`` of ``stack``, secrets included, run in the
    deploying program's directory (``project_dir``, default the current one)."""
    if project_dir is not None and not os.path.isfile(os.path.join(project_dir, "Pulumi.yaml")):
        raise JobError(f"{project_dir} is not a Pulumi project directory (no Pulumi.yaml there)")
    command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        completed = subprocess.run(command, cwd=project_dir, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise JobError(
            "pulumi is not on PATH (after `make up`, run: source ~/.cache/dataplatform/env.sh)"
        ) from exc
    if completed.returncode != 0:
        raise JobError(f"pulumi stack output failed for stack {stack}: {completed.stderr.strip()}")
    return parse_outputs(completed.stdout, "pulumi stack output")


def parse_outputs(text: str, source: str) -> dict[str, Any]:
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(outputs, dict):
        raise JobError(f"{source} is not a JSON object of stack outputs")
    return outputs


def file_outputs(path: str) -> dict[str, Any]:
    """Saved ``pulumi stack output --json --show-secrets``; ``-`` reads standard input."""
    if path == "-":
        return parse_outputs(sys.stdin.read(), "the outputs on standard input")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise JobError(f"cannot read outputs file {path}: {exc.strerror}") from exc
    return parse_outputs(text, f"outputs file {path}")


def read_target(
    stack: str | None, project_dir: str | None = None, outputs_file: str | None = None
) -> StackTarget:
    """What the stack says about running a job there: from a saved outputs
    file when one is given, else from pulumi in ``project_dir``."""
    if outputs_file is not None:
        label = stack or outputs_file
        return StackTarget.from_outputs(file_outputs(outputs_file), label)
    if not stack:
        raise JobError("name the stack (--stack) or give its saved outputs (--outputs FILE)")
    base = os.path.abspath(project_dir) if project_dir else None
    return StackTarget.from_outputs(pulumi_outputs(stack, project_dir), stack, base_dir=base)
