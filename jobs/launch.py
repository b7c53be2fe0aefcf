"""How a job is launched on each tier: one builder for the stack and the CLI.

The stack declares its jobs with these functions (``infra/dataplatform/services/spark/``)
and ``python -m jobs submit`` launches jobs with them, so a job gets the same
spark-submit arguments on dev and the same SparkApplication pod spec on prod
whichever way it was started: labels the Spark NetworkPolicy selects, the
read-only root with a scratch volume, memory overhead, dynamic allocation.

Pure functions of plain values, with no Spark and no Pulumi: values may be
Pulumi outputs when the stack calls them, since they are only placed, never
inspected.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from jobs.conventions import (
    APP_LABEL,
    DRIVER_ACCOUNT,
    DRIVER_LABEL,
    EXECUTOR_ACCOUNT,
    JOB_LABEL,
    PART_OF,
    SECRETS_DIR,
)
from jobs.definitions import JOBS
from jobs.quantity import spark_memory

SPARK_UID = 185
SPARK_VERSION = "4.0.1"
# A driver's UI: its REST API and, with spark.ui.prometheus.enabled, its
# executors' metrics at /metrics/executors/prometheus.
SPARK_UI_PORT = 4040
JOB_ENTRY = "/opt/dataplatform/jobs/run.py"
SCRATCH_DIR = "/tmp"  # noqa: S108 - an emptyDir or tmpfs of the pod's own
# JVM off-heap and Python workers beyond the heap Spark is given.
MEMORY_OVERHEAD_MIB = 384
SCRATCH_SIZE = "2Gi"
# A job's restarts after a failure, and the seconds between them, unless
# its caller asks for others.
DEFAULT_RETRIES = 2
DEFAULT_RETRY_INTERVAL_SECONDS = 60
# Spark settings that the SparkApplication carries as fields of its own.
_POD_CONF_PREFIXES = ("spark.driver.", "spark.executor.", "spark.dynamicAllocation.")


@dataclass(frozen=True)
class SparkResources:
    """What a job asks for: driver and executor sizes, and the executor range
    dynamic allocation moves in. Memory is the JVM heap, in MiB; each pod or
    container gets ``MEMORY_OVERHEAD_MIB`` on top. On Kubernetes a pod's CPU
    request may be set below its cores (``*_core_request_millis``): Spark
    still runs ``cores`` tasks at once and the pod may use up to ``cores``
    CPUs, but it fits a small cluster; None requests the cores."""

    driver_cores: int = 1
    driver_memory_mib: int = 1024
    executor_cores: int = 1
    executor_memory_mib: int = 1024
    min_executors: int = 1
    max_executors: int = 4
    driver_core_request_millis: int | None = None
    executor_core_request_millis: int | None = None

    def __post_init__(self) -> None:
        for name in ("driver_cores", "executor_cores", "driver_memory_mib", "executor_memory_mib"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name, cores in (("driver", self.driver_cores), ("executor", self.executor_cores)):
            request = getattr(self, f"{name}_core_request_millis")
            if request is not None and not 1 <= request <= cores * 1000:
                raise ValueError(f"{name} core request {request}m must be between 1m and its {cores} core(s)")
        if not 0 <= self.min_executors <= self.max_executors or self.max_executors < 1:
            raise ValueError(
                f"executors must satisfy 0 <= min <= max, max >= 1 "
                f"(got min {self.min_executors}, max {self.max_executors})"
            )

    @property
    def initial_executors(self) -> int:
        return max(1, self.min_executors)

    def conf(self) -> dict[str, str]:
        return {
            "spark.driver.cores": str(self.driver_cores),
            "spark.driver.memory": spark_memory(self.driver_memory_mib),
            "spark.executor.cores": str(self.executor_cores),
            "spark.executor.memory": spark_memory(self.executor_memory_mib),
            "spark.dynamicAllocation.enabled": "true",
            # No external shuffle service on either tier: track shuffle files.
            "spark.dynamicAllocation.shuffleTracking.enabled": "true",
            "spark.dynamicAllocation.minExecutors": str(self.min_executors),
            "spark.dynamicAllocation.initialExecutors": str(self.initial_executors),
            "spark.dynamicAllocation.maxExecutors": str(self.max_executors),
        }

    def to_output(self) -> dict[str, int]:
        """The stack output form (camelCase keys, as in the config)."""
        values = {_camel(f.name): getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_output(cls, value: Mapping[str, Any]) -> SparkResources:
        known = {_camel(f.name): f.name for f in fields(cls)}
        return cls(**{known[k]: int(v) for k, v in value.items() if k in known})

    def override(self, **changes: int | None) -> SparkResources:
        """A copy with the given fields replaced; None leaves a field as it is."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> str:
        return (
            f"driver {self.driver_cores} core(s) {self.driver_memory_mib} MiB, executors "
            f"{self.executor_cores} core(s) {self.executor_memory_mib} MiB "
            f"({self.min_executors}..{self.max_executors})"
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def spark_submit_command(
    master: str,
    job: str,
    job_args: Sequence[str],
    conf: Mapping[str, str],
    resources: SparkResources,
    *,
    name: str | None = None,
    driver_host: str | None = None,
) -> list[str]:
    """``spark-submit`` in client mode against a standalone master (dev)."""
    command = ["spark-submit", "--master", master, "--deploy-mode", "client"]
    command += ["--name", name or f"dataplatform-{job}"]
    settings = {**conf, **resources.conf(), **job_conf(job)}
    if driver_host is not None:
        # Executors on the workers connect back to the driver by this name.
        settings["spark.driver.host"] = driver_host
        settings["spark.driver.bindAddress"] = "0.0.0.0"  # noqa: S104 - inside its own container
    for key, value in sorted(settings.items()):
        command += ["--conf", f"{key}={value}"]
    return [*command, JOB_ENTRY, job, *job_args]


def job_conf(job: str) -> dict[str, str]:
    """The Spark settings ``job`` needs on top of the stack's (``Job.conf``)."""
    known = JOBS.get(job)
    return dict(known.conf) if known else {}


def driver_container_memory_mib(resources: SparkResources) -> int:
    """Memory a dev driver container needs: heap plus overhead."""
    return resources.driver_memory_mib + MEMORY_OVERHEAD_MIB


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": SPARK_UID,
        "runAsGroup": SPARK_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def spark_application(
    name: str,
    job: str,
    job_args: Sequence[str],
    *,
    image: Any,
    env: Mapping[str, Any],
    secret_name: Any,
    conf: Mapping[str, str],
    resources: SparkResources,
    namespace: str | None = None,
    schedule: str | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_interval_seconds: int = DEFAULT_RETRY_INTERVAL_SECONDS,
    time_to_live_seconds: int = 86400,
    labels: Mapping[str, str] | None = None,
    driver_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The job's SparkApplication (or, with ``schedule``, ScheduledSparkApplication).

    Defaults: driver and executors run as UID 185 under the "restricted" Pod
    Security profile with a read-only root, credentials from the Secret
    ``secret_name`` at ``/run/secrets``, a ``/tmp`` scratch volume, memory
    overhead on top of the heap, dynamic allocation with shuffle tracking
    between ``min_executors`` and ``max_executors``. ``retries`` bounds the
    OnFailure restarts, ``retry_interval_seconds`` apart; 0 means run once
    (``Never``).
    """
    pod_labels = {**APP_LABEL, **(labels or {})}
    # One mount per secret file rather than the directory: the driver's
    # service-account token is mounted under /var/run/secrets (= /run/secrets),
    # which a read-only volume there would not let the runtime create.
    secret_files = sorted(
        posixpath.basename(v)
        for v in env.values()
        if isinstance(v, str) and posixpath.dirname(v) == SECRETS_DIR
    )
    mounts = [
        *(
            {"name": "secrets", "mountPath": f"{SECRETS_DIR}/{f}", "subPath": f, "readOnly": True}
            for f in secret_files
        ),
        {"name": "scratch", "mountPath": SCRATCH_DIR},
    ]
    env_list = [{"name": k, "value": v} for k, v in sorted(env.items())]

    def pod(cores: int, heap_mib: int, request_millis: int | None) -> dict[str, Any]:
        return {
            "cores": cores,
            **({"coreRequest": f"{request_millis}m"} if request_millis is not None else {}),
            "coreLimit": f"{cores * 1000}m",
            "memory": spark_memory(heap_mib),
            "memoryOverhead": spark_memory(MEMORY_OVERHEAD_MIB),
            "labels": dict(pod_labels),
            "env": env_list,
            "volumeMounts": mounts,
            # Secret files are 0440: readable through the group the kubelet
            # gives them.
            "podSecurityContext": {"fsGroup": SPARK_UID},
            "securityContext": _security_context(),
        }

    driver = {
        **pod(resources.driver_cores, resources.driver_memory_mib, resources.driver_core_request_millis),
        "serviceAccount": DRIVER_ACCOUNT,
    }
    driver["labels"] = {**driver["labels"], **DRIVER_LABEL}
    if driver_annotations:
        driver["annotations"] = dict(driver_annotations)
    executor = {
        **pod(
            resources.executor_cores, resources.executor_memory_mib, resources.executor_core_request_millis
        ),
        "instances": resources.initial_executors,
        # No token: executors never call the API.
        "serviceAccount": EXECUTOR_ACCOUNT,
    }
    restart: dict[str, Any] = (
        {
            "type": "OnFailure",
            "onFailureRetries": retries,
            "onFailureRetryInterval": retry_interval_seconds,
            "onSubmissionFailureRetries": retries,
            "onSubmissionFailureRetryInterval": retry_interval_seconds,
        }
        if retries > 0
        else {"type": "Never"}
    )
    spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "mainApplicationFile": f"local://{JOB_ENTRY}",
        "arguments": [job, *job_args],
        "sparkVersion": SPARK_VERSION,
        "sparkConf": {
            **{k: v for k, v in conf.items() if not k.startswith(_POD_CONF_PREFIXES)},
            **job_conf(job),
        },
        "restartPolicy": restart,
        "timeToLiveSeconds": time_to_live_seconds,
        "dynamicAllocation": {
            "enabled": True,
            "initialExecutors": resources.initial_executors,
            "minExecutors": resources.min_executors,
            "maxExecutors": resources.max_executors,
            "shuffleTrackingEnabled": True,
        },
        "driver": driver,
        "executor": executor,
        "volumes": [
            {"name": "secrets", "secret": {"secretName": secret_name, "defaultMode": 0o440}},
            {"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_SIZE}},
        ],
    }
    metadata: dict[str, Any] = {"name": name, "labels": {**PART_OF, JOB_LABEL: job, **(labels or {})}}
    if namespace is not None:
        metadata["namespace"] = namespace
    if schedule:
        return {
            "apiVersion": "sparkoperator.k8s.io/v1beta2",
            "kind": "ScheduledSparkApplication",
            "metadata": metadata,
            "spec": {
                "schedule": schedule,
                "concurrencyPolicy": "Forbid",
                "successfulRunHistoryLimit": 3,
                "failedRunHistoryLimit": 3,
                "template": spec,
            },
        }
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": metadata,
        "spec": spec,
    }


def pod_spec_of(application: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an application that shape its pods (for comparisons)."""
    spec = application["spec"]
    spec = spec.get("template", spec)
    keys = ("image", "sparkConf", "dynamicAllocation", "driver", "executor", "volumes")
    return {key: spec[key] for key in keys}
