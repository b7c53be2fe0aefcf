"""What both ways of running Spark share: their settings, and the values
resolved from them once (the image, the settings every submission carries,
the sizes of a job and of a worker, what a driver needs)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import pulumi
import yaml
from pydantic import Field, field_validator, model_validator

from dataplatform.charts import ChartError, ChartMismatch, ChartSource, archive_chart_yaml, is_archive
from dataplatform.config import (
    CRON_RE,
    DNS_LABEL_RE,
    Buckets,
    ConfigModel,
    KubernetesSettings,
    Resources,
    Section,
    Settings,
    SettingsError,
    check_cpu,
    check_memory,
    keyed,
)
from dataplatform.project import DEFAULT_VERSION, PROJECT
from dataplatform.services.base import resolved_image
from dataplatform.workload import File, ProjectImage
from jobs.definitions import DEFAULT_TRIGGER_SECONDS, JOB_NAMES
from jobs.launch import MEMORY_OVERHEAD_MIB, SparkResources
from jobs.quantity import cpu_millis, kubernetes_memory, memory_bytes, mib

if TYPE_CHECKING:
    from dataplatform.supply import Supply


# The stream's name in the stack: its container (dev), its SparkApplication (prod).
STREAM_NAME = "features-stream"


class StreamingSettings(ConfigModel):
    """The ``features_stream`` job: landed event files to the events table
    and the online features, continuously. None for ``enabled``: on in prod,
    off in dev, where the default workers (2 x 1 core) would give one of
    their two cores to the stream for good."""

    enabled: bool | None = None
    trigger_seconds: float = Field(DEFAULT_TRIGGER_SECONDS, ge=0.5, le=3600)
    max_files_per_trigger: int = Field(100, ge=1, le=100_000)
    # Prod: restarts after a failure (the operator's OnFailure policy).
    restarts: int = Field(10, ge=1, le=1000)

    def active(self, docker: bool) -> bool:
        return (not docker) if self.enabled is None else self.enabled

    def job(self) -> SparkJobSettings:
        """The stack's declaration of the stream, as of any other job."""
        return SparkJobSettings(
            name=STREAM_NAME,
            job="features_stream",
            args=[
                "--trigger-seconds",
                f"{self.trigger_seconds:g}",
                "--max-files-per-trigger",
                str(self.max_files_per_trigger),
            ],
        )


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
    streaming: StreamingSettings = StreamingSettings()

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


# The sha256 of the pinned chart where it is known, by version and form:
# "archive" is the chart archive (.tgz) the chart repository serves for the
# version (upstream's release asset, which its index points at); "directory"
# is the chart's directory in the operator's source at the version's tag,
# hashed as ``charts.tree_sha256`` does. The OCI artifact is packaged
# separately upstream, so its digest is not this archive's: give it.
KNOWN_CHART_DIGESTS: dict[tuple[str, str], str] = {
    ("2.5.2", "archive"): "762be5b8632ecfe12eb20fff54450ddae0427f09506422107c508a0d1d38655b",
    ("2.5.2", "directory"): "f937bb0b847b63f440bda6936790c49e4806f5e6600aee6e515261239a6b1f98",
}
CHART_NAME = "spark-operator"
# The chart's own controller/webhook image (its values' registry and
# repository, tagged with its appVersion, which equals the chart version),
# named without a registry: on Kubernetes it is pulled from imageRegistry.
OPERATOR_REPOSITORY = "kubeflow/spark-operator/controller"
CHART_REPO_SCHEMES = ("https://", "http://", "oci://")
SHA256_RE = re.compile(r"^(sha256:)?([0-9a-f]{64})$")


class SparkOperatorSettings(ConfigModel):
    """The Kubeflow Spark Operator's chart, pinned by version and checked by
    sha256 before anything is declared. It comes from ``chartRepo`` (a chart
    repository, or an ``oci://`` registry path) or, with ``chartPath``, from
    a local copy (the chart's directory or its .tgz); ``chartSha256`` is the
    digest it must have (default: the one known for ``chartVersion`` from
    that kind of source). ``image`` replaces the chart's controller/webhook
    image (a full reference)."""

    install: bool = True
    chart_version: str = "2.5.2"
    chart_repo: str = "https://kubeflow.github.io/spark-operator"
    chart_path: str | None = None
    chart_sha256: str | None = None
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

    @field_validator("chart_repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not value.startswith(CHART_REPO_SCHEMES) or len(value.split("://", 1)[1].strip("/")) == 0:
            raise ValueError(
                "must be a chart repository URL (https://...) or an OCI registry path (oci://host/path)"
            )
        return value

    @field_validator("chart_path")
    @classmethod
    def _chart_dir(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = os.path.abspath(os.path.expanduser(value))
        if is_archive(path):
            try:
                archive_chart_yaml(path)
            except ChartError as error:
                raise ValueError(f"must be a Helm chart's directory or archive: {error}") from None
            return path
        if not os.path.isfile(os.path.join(path, "Chart.yaml")):
            raise ValueError(
                f"must be a Helm chart's directory or archive (.tgz); there is no Chart.yaml in {path}"
            )
        return path

    @field_validator("chart_sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = SHA256_RE.match(value.strip().lower())
        if not match:
            raise ValueError("must be a sha256 digest: 64 hex digits, with or without sha256:")
        return match.group(2)

    @model_validator(mode="after")
    def _chart_version_matches(self) -> SparkOperatorSettings:
        if self.chart_path:
            if is_archive(self.chart_path):
                found = str(archive_chart_yaml(self.chart_path).get("version"))
            else:
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

    @property
    def chart_source(self) -> ChartSource:
        return ChartSource(CHART_NAME, self.chart_version, self.chart_repo, self.chart_path)

    @property
    def expected_sha256(self) -> str | None:
        """``chartSha256``, or the digest known for the chart's version and source."""
        if self.chart_sha256:
            return self.chart_sha256
        kind = self.chart_source.kind
        if kind == "oci":
            return None
        return KNOWN_CHART_DIGESTS.get(
            (self.chart_version, "directory" if kind == "directory" else "archive")
        )

    @property
    def default_image(self) -> str:
        return f"{OPERATOR_REPOSITORY}:{self.chart_version}"


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
    if STREAM_NAME in names and spark.streaming.active(settings.is_docker):
        raise keyed(
            "sparkJobs",
            f"{STREAM_NAME} is the name of the streaming job (spark.streaming); name this job otherwise",
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise keyed("sparkJobs", f"job names must be unique; repeated: {', '.join(duplicates)}")
    operator = OPERATOR.of(settings)
    if not settings.is_docker and operator.install and operator.expected_sha256 is None:
        raise keyed(
            "sparkOperator.chartSha256",
            f"is required: no sha256 is known for the {operator.chart_source}; give the sha256 "
            "of the chart archive you trust (helm pull, then sha256sum)",
        )


def images_used(settings: Settings, images: dict[str, str]) -> dict[str, str]:
    """Spark's image, and on Kubernetes the Spark Operator's when its chart is installed."""
    operator = OPERATOR.of(settings)
    if settings.is_docker or not operator.install:
        return images
    return {**images, "sparkOperator.image": operator.image or operator.default_image}


def pin_chart(settings: Settings, supply: Supply) -> Settings:
    """The Spark Operator's chart checked against its sha256 before anything
    is declared; it is then installed from the checked copy (the local
    path, or the downloaded archive)."""
    operator = OPERATOR.of(settings)
    if settings.is_docker or not operator.install:
        return settings
    expected = operator.expected_sha256
    assert expected is not None, "check() requires chartSha256 where no digest is known"
    key = f"{PROJECT}:sparkOperator.chartSha256"
    try:
        path = supply.verified_chart(operator.chart_source, expected)
    except ChartMismatch as error:
        raise SettingsError(
            f"{key}: the {error.source} does not match: expected sha256:{error.expected}, "
            f"got sha256:{error.actual}; nothing was deployed. Use the chart that digest names, "
            "or set chartSha256 to the digest of a chart you trust"
        ) from None
    except ChartError as error:
        where = "chartPath" if operator.chart_path else "chartRepo"
        raise SettingsError(
            f"{PROJECT}:sparkOperator.{where}: cannot fetch the {operator.chart_source}: {error}; "
            "where it cannot be reached, give chartPath (the chart's .tgz or directory)"
        ) from None
    return settings.model_copy(update={OPERATOR.field: operator.model_copy(update={"chart_path": path})})


MASTER_PORT = 7077
PULL_SECRETS_CONF = "spark.kubernetes.container.image.pullSecrets"
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
    # The streaming job, when the stack runs it (``StreamingSettings.active``).
    stream: StreamingSettings | None = None
    operator: SparkOperatorSettings = field(default_factory=lambda: SparkOperatorSettings())
    # Prod: where the jobs run (the operator watches it).
    namespace: str = KubernetesSettings().jobs
    # Prod: the Secrets the operator's and Spark's pods pull their images with.
    image_pull_secrets: tuple[str, ...] = ()
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
    pull_secrets = () if settings.is_docker else tuple(settings.image_pull_secrets)
    conf = submit_conf(settings.buckets.events)
    if pull_secrets:
        # Spark gives them to the driver and executor pods it creates; jobs
        # submitted from the CLI take this conf from the stack's outputs.
        conf[PULL_SECRETS_CONF] = ",".join(pull_secrets)
    return SparkArgs(
        environment,
        image=cast(ProjectImage, resolved_image(settings, NAME, IMAGE)),
        conf=conf,
        image_pull_secrets=pull_secrets,
        job_resources=job_resources(spark),
        workers=workers,
        jobs=tuple(JOBS.of(settings)),
        stream=spark.streaming if spark.streaming.active(settings.is_docker) else None,
        operator=OPERATOR.of(settings),
        namespace=settings.kubernetes.jobs,
        raw_bucket=settings.buckets.raw,
        master_host_port=settings.host_port("spark_master"),
        ui_host_port=settings.host_port("spark_ui"),
        master_resources=settings.resources_for("spark-master", MASTER_RESOURCES),
        worker_resources=settings.resources_for("spark-worker", workers.default_resources()),
        jobs_depend_on=jobs_depend_on,
        s3_url=s3_url,
        credentials=dict(credentials or {}),
    )
