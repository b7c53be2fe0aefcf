"""A deployed stack's outputs, read with pulumi, as the settings a submitted job runs with.

The stack says where and how (contract "Stack outputs the jobs CLI reads"):
``spark_submit`` (tier, image, master URL or namespace, DP_* variables, the
Spark settings and sizes the stack's own jobs use) and the secret
``platform_credentials``. Sizes given on the command line override the
stack's, one by one. Standard library only: no pyspark on the caller's
machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
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


def pulumi_outputs(stack: str, project_dir: str | None) -> dict[str, Any]:
    """``pulumi stack output`` of ``stack``, secrets included."""
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


def read_target(stack: str, project_dir: str | None) -> StackTarget:
    """What ``stack`` says about running a job there."""
    return StackTarget.from_outputs(pulumi_outputs(stack, project_dir), stack)
