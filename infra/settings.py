"""Every configuration key of the project, typed and validated in one place.

The Pulumi program reads nothing from ``pulumi.Config`` outside this module.
A bad value stops the program before any resource is declared, with one
message per problem that names the key, the value given and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from enum import StrEnum
from typing import Any, Literal

import pulumi
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra.project import PROJECT, ROOT

CPU_RE = re.compile(r"^(\d+(\.\d{1,3})?|\d+m)$")
MEMORY_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Standard five-field cron, or the @-macros the Spark Operator accepts.
CRON_RE = re.compile(r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly|every \S+)|(\S+\s+){4}\S+)$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A Prometheus duration such as 30s, 5m or 1h30m.
PROM_DURATION_RE = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")

_MEMORY_FACTORS = {
    "": 1,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def _keyed(key: str, message: str) -> ValueError:
    """An error found across fields, pinned to the key the user should change."""
    return ValueError(f"[{key}] {message}")


class SettingsError(pulumi.RunError):
    """A configuration problem; Pulumi prints the message without a traceback."""


def memory_bytes(quantity: str) -> int:
    """Bytes in a Kubernetes memory quantity such as ``512Mi`` or ``1G``."""
    match = re.match(r"^(\d+(?:\.\d+)?)([A-Za-z]*)$", quantity)
    if not match or match.group(2) not in _MEMORY_FACTORS:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(float(match.group(1)) * _MEMORY_FACTORS[match.group(2)])


def cpu_millis(quantity: str) -> int:
    """Millicores in a Kubernetes CPU quantity such as ``500m`` or ``1.5``."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


class _Model(BaseModel):
    """Config objects: camelCase keys as users write them, typos rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


def _check_cpu(value: str) -> str:
    if not CPU_RE.match(value) or cpu_millis(value) <= 0:
        raise ValueError("must be a CPU quantity greater than zero, such as 250m, 1 or 1.5")
    return value


def _check_memory(value: str) -> str:
    if not MEMORY_RE.match(value) or memory_bytes(value) <= 0:
        raise ValueError("must be a memory quantity greater than zero, such as 512Mi or 2Gi")
    return value


class Target(StrEnum):
    DOCKER = "docker"
    KUBERNETES = "kubernetes"


class ResourceSettings(_Model):
    """Requests and limits of one workload. Kubernetes applies all four; the
    Docker target applies ``memoryLimit`` only (CPU is shared on one host)."""

    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None

    _cpu = field_validator("cpu_request", "cpu_limit")(lambda v: None if v is None else _check_cpu(v))
    _memory = field_validator("memory_request", "memory_limit")(_check_memory)

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> ResourceSettings:
        if memory_bytes(self.memory_limit) < memory_bytes(self.memory_request):
            raise _keyed(
                "memoryLimit",
                f"{self.memory_limit} is below memoryRequest {self.memory_request}",
            )
        if self.cpu_limit and cpu_millis(self.cpu_limit) < cpu_millis(self.cpu_request):
            raise _keyed("cpuLimit", f"{self.cpu_limit} is below cpuRequest {self.cpu_request}")
        return self


class HostPorts(_Model):
    """Dev tier only: ports published on ``bindAddress``. Container ports stay fixed.

    The seeds' table gives the Spark UI and the gateway both 8080 and
    inference and Grafana both 3000; the defaults keep the gateway and
    inference where the table puts them and move the other two.
    """

    gateway: int = Field(8080, ge=1, le=65535)
    inference: int = Field(3000, ge=1, le=65535)
    spark_master: int = Field(7077, ge=1, le=65535)
    spark_ui: int = Field(8081, ge=1, le=65535)
    redis: int = Field(6379, ge=1, le=65535)
    minio_api: int = Field(9000, ge=1, le=65535)
    minio_console: int = Field(9001, ge=1, le=65535)
    prometheus: int = Field(9090, ge=1, le=65535)
    grafana: int = Field(3001, ge=1, le=65535)
    alertmanager: int = Field(9093, ge=1, le=65535)

    @model_validator(mode="after")
    def _no_collision(self) -> HostPorts:
        seen: dict[int, str] = {}
        for name, port in self.model_dump(by_alias=True).items():
            if port in seen:
                raise _keyed(
                    name,
                    f"port {port} is already given to {seen[port]}; every published port must be distinct",
                )
            seen[port] = name
        return self


class Images(_Model):
    """Image references. Project images left unset are built (dev) or pulled
    from ``imageRegistry`` (prod); third-party images default to pinned
    official releases."""

    redis: str = "redis:7.4.5-bookworm"
    prometheus: str = "prom/prometheus:v3.5.0"
    grafana: str = "grafana/grafana:12.2.0"
    alertmanager: str = "prom/alertmanager:v0.28.1"
    spark: str | None = None
    minio: str | None = None
    gateway: str | None = None
    inference: str | None = None

    @field_validator("*")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        if value is None:
            return value
        name = value.split("@", 1)[0]
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
        if "@sha256:" not in value and (not tag or tag == "latest"):
            raise ValueError("must be pinned to a version tag or digest, not latest or untagged")
        return value


class SparkSettings(_Model):
    workers: int = Field(2, ge=1, le=64)
    worker_cores: int = Field(1, ge=1, le=64)
    worker_memory: str = "1Gi"
    driver_cores: int = Field(1, ge=1, le=64)
    driver_memory: str = "1Gi"
    executor_cores: int = Field(1, ge=1, le=64)
    executor_memory: str = "1Gi"
    min_executors: int = Field(1, ge=0, le=1000)
    max_executors: int = Field(4, ge=1, le=1000)

    _memory = field_validator("worker_memory", "driver_memory", "executor_memory")(_check_memory)

    @model_validator(mode="after")
    def _executor_range(self) -> SparkSettings:
        if self.min_executors > self.max_executors:
            raise _keyed(
                "minExecutors",
                f"{self.min_executors} is above maxExecutors {self.max_executors}",
            )
        return self


JobName = Literal["event_counts", "datagen", "features", "train"]


class SparkJobSettings(_Model):
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


class IngressSettings(_Model):
    host: str
    tls_secret_name: str | None = None
    class_name: str | None = None


class GatewaySettings(_Model):
    replicas: int = Field(2, ge=1, le=100)
    max_replicas: int = Field(6, ge=1, le=100)
    rate_limit: int = Field(100, ge=1)
    rate_window_seconds: int = Field(60, ge=1, le=86400)
    fail_mode: Literal["open", "closed"] = "open"
    service_type: Literal["ClusterIP", "LoadBalancer", "NodePort"] = "ClusterIP"
    ingress: IngressSettings | None = None

    @model_validator(mode="after")
    def _replica_range(self) -> GatewaySettings:
        if self.replicas > self.max_replicas:
            raise _keyed("replicas", f"{self.replicas} is above maxReplicas {self.max_replicas}")
        return self


class InferenceSettings(_Model):
    replicas: int = Field(2, ge=1, le=100)
    max_replicas: int = Field(6, ge=1, le=100)
    model_name: str = "churn"
    poll_seconds: int = Field(15, ge=1, le=3600)
    max_batch: int = Field(256, ge=1, le=10000)

    @model_validator(mode="after")
    def _replica_range(self) -> InferenceSettings:
        if self.replicas > self.max_replicas:
            raise _keyed("replicas", f"{self.replicas} is above maxReplicas {self.max_replicas}")
        return self


class GrafanaSettings(_Model):
    enabled: bool = True


def _check_duration(value: str) -> str:
    if not value or not PROM_DURATION_RE.match(value):
        raise ValueError("must be a Prometheus duration such as 30s, 5m or 1h")
    return value


class MonitoringSettings(_Model):
    """How often Prometheus scrapes and evaluates, and per-alert ``for``
    overrides (alert name -> duration), e.g. short ones for a test stack."""

    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    alert_for: dict[str, str] = {}

    _durations = field_validator("scrape_interval", "evaluation_interval")(_check_duration)

    @field_validator("alert_for")
    @classmethod
    def _known_alerts(cls, value: dict[str, str]) -> dict[str, str]:
        from monitoring.rules import ALERT_NAMES

        unknown = sorted(set(value) - set(ALERT_NAMES))
        if unknown:
            raise ValueError(f"unknown alert {', '.join(unknown)}; allowed: {', '.join(ALERT_NAMES)}")
        for duration in value.values():
            _check_duration(duration)
        return value


class RedisSettings(_Model):
    """``maxmemoryRatio``: the share of the container's memory limit Redis may
    fill; the rest is headroom for the copy-on-write of an AOF rewrite and
    client buffers. ``maxmemoryPolicy``: what Redis evicts once full."""

    maxmemory_ratio: float = Field(0.45, gt=0.05, le=0.6)
    maxmemory_policy: Literal[
        "noeviction", "volatile-lru", "volatile-lfu", "volatile-ttl", "allkeys-lru", "allkeys-lfu"
    ] = "volatile-lru"


class Buckets(_Model):
    raw: str = "raw"
    lake: str = "lake"
    models: str = "models"
    events: str = "spark-events"

    @field_validator("*")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not BUCKET_RE.match(value) or ".." in value:
            raise ValueError("must be an S3 bucket name: 3-63 lowercase letters, digits, '.', '-'")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Buckets:
        names = list(self.model_dump().values())
        if len(set(names)) != len(names):
            raise _keyed("events" if names[3] in names[:3] else "lake", "bucket names must be distinct")
        return self


class StorageSettings(_Model):
    """Sizes of the persistent volumes (Kubernetes PVCs; Docker ignores sizes)."""

    minio: str = "20Gi"
    redis: str = "2Gi"
    prometheus: str = "10Gi"
    grafana: str = "1Gi"
    alertmanager: str = "1Gi"
    storage_class: str | None = None

    _memory = field_validator("minio", "redis", "prometheus", "grafana", "alertmanager")(_check_memory)


class KubernetesSettings(_Model):
    namespace: str = "dataplatform"
    version: str = "1.33"
    render_dir: str | None = None
    kubeconfig_context: str | None = None

    @field_validator("namespace")
    @classmethod
    def _dns(cls, value: str) -> str:
        if not DNS_LABEL_RE.match(value):
            raise ValueError("must be a DNS label: lowercase letters, digits and '-'")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"^1\.(2[5-9]|3\d)$", value):
            raise ValueError("must be a Kubernetes minor version from 1.25 on, such as 1.33")
        return value


class SparkOperatorSettings(_Model):
    install: bool = True
    chart_version: str = "2.3.0"
    chart_repo: str = "https://kubeflow.github.io/spark-operator"
    namespace: str = "spark-operator"


class Settings(_Model):
    target: Target = Target.DOCKER
    version: str = "0.1.0"
    image_registry: str | None = None
    build_images: bool = True
    build_ca_file: str | None = None
    bind_address: str = "127.0.0.1"
    purge_on_destroy: bool = False
    host_ports: HostPorts = HostPorts()
    images: Images = Images()
    spark: SparkSettings = SparkSettings()
    spark_jobs: list[SparkJobSettings] = []
    gateway: GatewaySettings = GatewaySettings()
    inference: InferenceSettings = InferenceSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    redis: RedisSettings = RedisSettings()
    buckets: Buckets = Buckets()
    storage: StorageSettings = StorageSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    spark_operator: SparkOperatorSettings = SparkOperatorSettings()
    resources: dict[str, ResourceSettings] = {}

    @field_validator("version")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", value) or value == "latest":
            raise ValueError("must be an image tag other than latest, such as 0.1.0")
        return value

    @field_validator("build_ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isfile(value):
            raise ValueError("must name a readable PEM file")
        return value

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address, such as 127.0.0.1") from None
        return value

    @field_validator("resources")
    @classmethod
    def _known_workloads(cls, value: dict[str, ResourceSettings]) -> dict[str, ResourceSettings]:
        unknown = sorted(set(value) - set(WORKLOAD_NAMES))
        if unknown:
            raise ValueError(f"unknown workload {', '.join(unknown)}; allowed: {', '.join(WORKLOAD_NAMES)}")
        return value

    @model_validator(mode="after")
    def _prod_needs_registry(self) -> Settings:
        if self.target is Target.KUBERNETES and not self.image_registry:
            missing = [
                name
                for name in ("spark", "minio", "gateway", "inference")
                if getattr(self.images, name) is None
            ]
            if missing:
                raise _keyed(
                    "imageRegistry",
                    "is required when target is kubernetes: the project's own images "
                    f"({', '.join(missing)}) are pulled from it; set it, or give each of "
                    "them in dataplatform:images",
                )
        if self.target is Target.DOCKER:
            self._executors_fit_workers()
        names = [job.name for job in self.spark_jobs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise _keyed("sparkJobs", f"job names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def _executors_fit_workers(self) -> None:
        """A standalone worker launches an executor only if the whole executor
        fits what the worker offers; otherwise the job waits for ever."""
        spark = self.spark
        if memory_bytes(spark.executor_memory) > memory_bytes(spark.worker_memory):
            raise _keyed(
                "spark.executorMemory",
                f"an executor of {spark.executor_memory} does not fit a dev Spark worker, which offers "
                f"spark.workerMemory {spark.worker_memory}; lower executorMemory or raise workerMemory",
            )
        if spark.executor_cores > spark.worker_cores:
            raise _keyed(
                "spark.executorCores",
                f"an executor of {spark.executor_cores} cores does not fit a dev Spark worker, which offers "
                f"spark.workerCores {spark.worker_cores}; lower executorCores or raise workerCores",
            )

    @property
    def is_docker(self) -> bool:
        return self.target is Target.DOCKER

    def resources_for(self, workload: str, default: ResourceSettings) -> ResourceSettings:
        return self.resources.get(workload, default)


# Workloads whose resources may be overridden under ``dataplatform:resources``.
WORKLOAD_NAMES = (
    "spark-master",
    "spark-worker",
    "redis",
    "minio",
    "gateway",
    "inference",
    "prometheus",
    "grafana",
    "alertmanager",
)


def _format_error(error: Any) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    # Pydantic appends the validator's tag to some locations; keep user keys only.
    key = f"{PROJECT}:" + ".".join(loc) if loc else f"{PROJECT}"
    if error["type"] == "extra_forbidden":
        parent = _ALLOWED_BY_PATH.get(tuple(loc[:-1]))
        allowed = f"; allowed keys: {', '.join(parent)}" if parent else ""
        return f"{key}: unknown key{allowed}"
    message = str(error["msg"]).removeprefix("Value error, ")
    pinned = re.match(r"^\[([^\]]+)\] (.*)$", message, re.S)
    if pinned:
        # A cross-field check: name the field and show its own value.
        field, message = pinned.groups()
        key = f"{key}.{field}" if loc else f"{PROJECT}:{field}"
        value = error.get("input")
        value = value.get(field) if isinstance(value, dict) else None
        return f"{key}: {message}" + (f" (got {json.dumps(value)})" if value is not None else "")
    value = error.get("input")
    if isinstance(value, (dict, list)):
        return f"{key}: {message}"
    return f"{key}: {message} (got {json.dumps(value)})"


def _allowed_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    result: dict[tuple[str, ...], list[str]] = {}
    result[prefix] = [f.alias or n for n, f in model.model_fields.items()]
    for name, field in model.model_fields.items():
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                result.update(_allowed_keys(candidate, (*prefix, field.alias or name)))
    return result


_ALLOWED_BY_PATH = _allowed_keys(Settings)


def parse_settings(raw: dict[str, Any]) -> Settings:
    """Validate raw config values (keys without the project prefix)."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = [_format_error(e) for e in exc.errors()]
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def _decode(value: Any) -> Any:
    """Config values arrive as strings; objects and arrays as JSON text."""
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if stripped[:1] in "{[" or stripped in ("true", "false") or re.match(r"^-?\d+$", stripped):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    return value


def _stack_file_keys() -> set[str]:
    """The ``dataplatform:*`` keys written in the stack's settings file."""
    path = ROOT / f"Pulumi.{pulumi.get_stack()}.yaml"
    if not path.is_file():
        return set()
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    prefix = f"{PROJECT}:"
    return {str(k)[len(prefix) :].split(".", 1)[0] for k in config if str(k).startswith(prefix)}


def raw_project_config() -> dict[str, Any]:
    """Every ``dataplatform:*`` key set for the stack, so typos can be caught.

    ``pulumi.Config`` answers only for keys it is asked about: it is asked
    for every key the settings know, and for every key the stack's settings
    file names, so a misspelt key there is reported rather than ignored.
    """
    config = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key in sorted(set(_ALLOWED_BY_PATH[()]) | _stack_file_keys()):
        value = config.get(key)
        # Pulumi.yaml declares a default for every key (the engine requires a
        # value otherwise); an empty string there means "not set".
        if value is not None and value != "":
            raw[key] = _decode(value)
    return raw


# The CA bundle a TLS-inspecting proxy needs belongs to the machine, not the
# stack, so it may also come from the environment.
BUILD_CA_ENV = "DATAPLATFORM_BUILD_CA_FILE"


def load_settings() -> Settings:
    raw = raw_project_config()
    if "buildCaFile" not in raw and os.environ.get(BUILD_CA_ENV):
        raw["buildCaFile"] = os.environ[BUILD_CA_ENV]
    return parse_settings(raw)
