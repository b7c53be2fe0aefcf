"""What both ways of running Spark share: their settings, and the values
resolved from them once (the image, the settings every submission carries,
the sizes of a job and of a worker, what a driver needs)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import cast

import pulumi
import yaml
from pydantic import Field, field_validator, model_validator

from dataplatform.config import (
    CRON_RE,
    DNS_LABEL_RE,
    Buckets,
    ConfigModel,
    KubernetesSettings,
    Resources,
    Section,
    Settings,
    check_cpu,
    check_memory,
    keyed,
)
from dataplatform.project import DEFAULT_VERSION
from dataplatform.services.base import resolved_image
from dataplatform.workload import File, ProjectImage
from jobs.definitions import JOB_NAMES
from jobs.launch import MEMORY_OVERHEAD_MIB, SparkResources
from jobs.quantity import cpu_millis, kubernetes_memory, memory_bytes, mib


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


class SparkJobSettings(ConfigModel):
    """A job declared in the stack. With a schedule it recurs (prod only)."""

    name: str
    job: str
    args: list[str] = []
    schedule: str | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not DNS_LABEL_RE.match(value) or len(value) > 40:
            raise ValueError("must be lowercase letters, digits and '-', at most 40 characters")
        return value

    @field_validator("job")
    @classmethod
    def _known_job(cls, value: str) -> str:
        if value not in JOB_NAMES:
            raise ValueError(f"must be one of the jobs in jobs/: {', '.join(JOB_NAMES)}")
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
    # Namespaces of other platforms the installed operator also watches
    # (platforms deployed with the operator ``existing``).
    job_namespaces: list[str] = []

    @field_validator("job_namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        for namespace in value:
            if not DNS_LABEL_RE.match(namespace):
                raise ValueError(f"{namespace!r} is not a namespace name (a DNS label)")
        return value

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
NAME = "spark"
IMAGE = ProjectImage(NAME, ".", "images/spark/Dockerfile", DEFAULT_VERSION)
MASTER_RESOURCES = Resources.of("250m", "512Mi", "1Gi")


@dataclass(frozen=True)
class SparkEnvironment:
    """What every driver needs to reach the platform's data."""

    env: dict[str, pulumi.Input[str]]
    files: tuple[File, ...]
    talks_to: tuple[str, ...]


@dataclass(frozen=True)
class Workers:
    """The dev tier's standalone workers: how many, and what each offers."""

    count: int = 2
    cores: int = 1
    memory_mib: int = 1024

    def default_resources(self) -> Resources:
        """A worker's container: its cores and memory requested, and room for
        two JVMs' overhead (the worker's and an executor's) in its limit."""
        return Resources.of(
            str(self.cores),
            kubernetes_memory(self.memory_mib),
            kubernetes_memory(self.memory_mib + 2 * MEMORY_OVERHEAD_MIB),
        )


def submit_conf(events_bucket: str) -> dict[str, str]:
    """Spark settings shared by both tiers' submissions, sizes aside."""
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"s3a://{events_bucket}/",
        "spark.ui.prometheus.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }


def job_resources(spark: SparkSettings) -> SparkResources:
    """What each job asks for, from ``dataplatform:spark``."""
    return SparkResources(
        driver_cores=spark.driver_cores,
        driver_memory_mib=mib(spark.driver_memory),
        executor_cores=spark.executor_cores,
        executor_memory_mib=mib(spark.executor_memory),
        min_executors=spark.min_executors,
        max_executors=spark.max_executors,
        driver_core_request_millis=(
            cpu_millis(spark.driver_core_request) if spark.driver_core_request else None
        ),
        executor_core_request_millis=(
            cpu_millis(spark.executor_core_request) if spark.executor_core_request else None
        ),
    )


@dataclass(frozen=True)
class SparkArgs:
    """What Spark is built from, every value resolved once: what drivers need
    to reach the data, the image, the settings and sizes every job gets, the
    dev workers, the jobs the stack declares, and the prod operator. Only
    ``environment`` has no default."""

    environment: SparkEnvironment
    image: ProjectImage = IMAGE
    conf: dict[str, str] = field(default_factory=lambda: submit_conf(Buckets().events))
    job_resources: SparkResources = field(default_factory=SparkResources)
    workers: Workers = field(default_factory=Workers)
    jobs: tuple[SparkJobSettings, ...] = ()
    operator: SparkOperatorSettings = field(default_factory=lambda: SparkOperatorSettings())
    # Prod: where the jobs run (the operator watches it).
    namespace: str = KubernetesSettings().namespace
    raw_bucket: str = Buckets().raw
    # Dev: the master's published ports and the daemons' resources.
    master_host_port: int = MASTER_PORT
    ui_host_port: int = 8081
    master_resources: Resources = MASTER_RESOURCES
    worker_resources: Resources | None = None
    # What jobs need ready before they run (the buckets). The cluster itself
    # does not wait for them, so it starts alongside storage.
    jobs_depend_on: tuple[pulumi.Resource, ...] = ()
    # Where a job submitted from the dev host reaches S3, and the credentials
    # it uses (the ``platform_credentials`` output).
    s3_url: pulumi.Output[str] | None = None
    credentials: dict[str, pulumi.Input[str]] = field(default_factory=dict)


def spark_args(
    settings: Settings,
    environment: SparkEnvironment,
    *,
    jobs_depend_on: tuple[pulumi.Resource, ...] = (),
    s3_url: pulumi.Output[str] | None = None,
    credentials: dict[str, pulumi.Input[str]] | None = None,
) -> SparkArgs:
    """Spark's args from the stack's settings."""
    spark = CONFIG.of(settings)
    workers = Workers(spark.workers, spark.worker_cores, mib(spark.worker_memory))
    return SparkArgs(
        environment,
        image=cast(ProjectImage, resolved_image(settings, NAME, IMAGE)),
        conf=submit_conf(settings.buckets.events),
        job_resources=job_resources(spark),
        workers=workers,
        jobs=tuple(JOBS.of(settings)),
        operator=OPERATOR.of(settings),
        namespace=settings.kubernetes.namespace,
        raw_bucket=settings.buckets.raw,
        master_host_port=settings.host_port("spark_master"),
        ui_host_port=settings.host_port("spark_ui"),
        master_resources=settings.resources_for("spark-master", MASTER_RESOURCES),
        worker_resources=settings.resources_for("spark-worker", workers.default_resources()),
        jobs_depend_on=jobs_depend_on,
        s3_url=s3_url,
        credentials=dict(credentials or {}),
    )
