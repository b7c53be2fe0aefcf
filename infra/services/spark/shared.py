"""What both ways of running Spark share: the image, the settings every
submission carries, the sizes of a job and what a driver needs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

import pulumi
import yaml
from pydantic import Field, field_validator, model_validator

from infra.services.common import project_image
from infra.settings import (
    CRON_RE,
    DNS_LABEL_RE,
    ConfigModel,
    Section,
    Settings,
    check_cpu,
    check_memory,
    cpu_millis,
    keyed,
    memory_bytes,
)
from infra.workload import File, ProjectImage
from jobs.launch import MEMORY_OVERHEAD_MIB, SparkResources, memory_mib


class SparkSettings(ConfigModel):
    workers: int = Field(2, ge=1, le=64)
    worker_cores: int = Field(1, ge=1, le=64)
    worker_memory: str = "1Gi"
    driver_cores: int = Field(1, ge=1, le=64)
    driver_memory: str = "1Gi"
    executor_cores: int = Field(1, ge=1, le=64)
    executor_memory: str = "1Gi"
    min_executors: int = Field(1, ge=0, le=1000)
    max_executors: int = Field(4, ge=1, le=1000)
    # Kubernetes only: the CPU a driver / executor pod requests, when less
    # than its cores (a small cluster); the pod may still use its cores.
    driver_core_request: str | None = None
    executor_core_request: str | None = None

    _memory = field_validator("worker_memory", "driver_memory", "executor_memory")(check_memory)
    _cpu = field_validator("driver_core_request", "executor_core_request")(
        lambda v: None if v is None else check_cpu(v)
    )

    @model_validator(mode="after")
    def _executor_range(self) -> SparkSettings:
        if self.min_executors > self.max_executors:
            raise keyed(
                "minExecutors",
                f"{self.min_executors} is above maxExecutors {self.max_executors}",
            )
        for role, request, cores in (
            ("driver", self.driver_core_request, self.driver_cores),
            ("executor", self.executor_core_request, self.executor_cores),
        ):
            if request is not None and cpu_millis(request) > cores * 1000:
                raise keyed(
                    f"{role}CoreRequest",
                    f"{request} is above {role}Cores {cores}; a request may only be lower",
                )
        return self


JobName = Literal["event_counts", "datagen", "features", "train"]


class SparkJobSettings(ConfigModel):
    """A job declared in the stack. With a schedule it recurs (prod only)."""

    name: str
    job: JobName
    args: list[str] = []
    schedule: str | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not DNS_LABEL_RE.match(value) or len(value) > 40:
            raise ValueError("must be lowercase letters, digits and '-', at most 40 characters")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not CRON_RE.match(value.strip()):
            raise ValueError("must be a five-field cron expression or an @-macro such as @daily")
        return value


# registry[:port]/repository[/more]:tag[@sha256:digest]
IMAGE_WITH_TAG_RE = re.compile(
    r"^[^\s/:@]+(:\d+)?(/[^\s:@]+)+:[A-Za-z0-9_][A-Za-z0-9_.-]*(@sha256:[0-9a-f]{64})?$"
)


class SparkOperatorSettings(ConfigModel):
    """The Kubeflow Spark Operator's chart, pinned. ``chartPath`` installs it
    from a local directory (the chart from the operator's source at the
    same version) instead of the chart repository; ``image`` replaces the
    chart's controller/webhook image (a full reference)."""

    install: bool = True
    chart_version: str = "2.5.2"
    chart_repo: str = "https://kubeflow.github.io/spark-operator"
    chart_path: str | None = None
    image: str | None = None
    namespace: str = "spark-operator"

    @field_validator("chart_path")
    @classmethod
    def _chart_dir(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = os.path.expanduser(value)
        if not os.path.isfile(os.path.join(path, "Chart.yaml")):
            raise ValueError(f"must be a directory holding a Helm chart (no Chart.yaml in {path})")
        return path

    @model_validator(mode="after")
    def _chart_version_matches(self) -> SparkOperatorSettings:
        if self.chart_path:
            with open(os.path.join(self.chart_path, "Chart.yaml")) as handle:
                found = str((yaml.safe_load(handle) or {}).get("version"))
            if found != self.chart_version:
                raise keyed(
                    "chartPath",
                    f"the chart in {self.chart_path} is version {found}, but chartVersion is "
                    f"{self.chart_version}; use the chart of the pinned version",
                )
        return self

    @field_validator("image")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_WITH_TAG_RE.match(value):
            raise ValueError(
                "must be an image reference with a registry and a tag, such as "
                "registry.example.com:5000/spark-operator:2.5.2"
            )
        return value


CONFIG = Section("spark", SparkSettings, SparkSettings())
JOBS: Section[list[SparkJobSettings]] = Section("spark_jobs", list[SparkJobSettings], [])
OPERATOR = Section("spark_operator", SparkOperatorSettings, SparkOperatorSettings())


def check(settings: Settings) -> None:
    """Checks across keys, reported on the key to change."""
    spark = CONFIG.of(settings)
    if settings.is_docker:
        # A standalone worker launches an executor only if the whole executor
        # fits what the worker offers; otherwise the job waits for ever.
        if memory_bytes(spark.executor_memory) > memory_bytes(spark.worker_memory):
            raise keyed(
                "spark.executorMemory",
                f"an executor of {spark.executor_memory} does not fit a dev Spark worker, which offers "
                f"spark.workerMemory {spark.worker_memory}; lower executorMemory or raise workerMemory",
            )
        if spark.executor_cores > spark.worker_cores:
            raise keyed(
                "spark.executorCores",
                f"an executor of {spark.executor_cores} cores does not fit a dev Spark worker, which "
                f"offers spark.workerCores {spark.worker_cores}; lower executorCores or raise workerCores",
            )
    names = [job.name for job in JOBS.of(settings)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise keyed("sparkJobs", f"job names must be unique; repeated: {', '.join(duplicates)}")


MASTER_PORT = 7077
OVERHEAD = MEMORY_OVERHEAD_MIB * 1024 * 1024


def spark_memory(quantity: str) -> str:
    """A Kubernetes quantity in Spark's notation (whole mebibytes)."""
    return f"{memory_bytes(quantity) // (1024 * 1024)}m"


def mebibytes(n: int) -> str:
    return f"{n // (1024 * 1024)}Mi"


@dataclass(frozen=True)
class SparkEnvironment:
    """What every driver needs to reach the platform's data."""

    env: dict[str, pulumi.Input[str]]
    files: tuple[File, ...]
    talks_to: tuple[str, ...]


def image(settings: Settings) -> ProjectImage:
    return project_image(settings, "spark", ".", "images/spark/Dockerfile")


def submit_conf(settings: Settings) -> dict[str, str]:
    """Spark settings shared by both tiers' submissions, sizes aside."""
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"s3a://{settings.buckets.events}/",
        "spark.ui.prometheus.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }


def job_resources(settings: Settings) -> SparkResources:
    """What each job asks for, from ``dataplatform:spark``."""
    spark = CONFIG.of(settings)
    return SparkResources(
        driver_cores=spark.driver_cores,
        driver_memory_mib=memory_mib(spark.driver_memory),
        executor_cores=spark.executor_cores,
        executor_memory_mib=memory_mib(spark.executor_memory),
        min_executors=spark.min_executors,
        max_executors=spark.max_executors,
        driver_core_request_millis=(
            cpu_millis(spark.driver_core_request) if spark.driver_core_request else None
        ),
        executor_core_request_millis=(
            cpu_millis(spark.executor_core_request) if spark.executor_core_request else None
        ),
    )
