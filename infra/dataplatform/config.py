"""The vocabulary settings are written in: the base model, checks, and the
types several services share (resources, scaling, buckets, the cluster).

Imports nothing of the project but the shared quantity parser, so every
service module can import it; the whole config model is assembled above the
service catalogue, in ``dataplatform.settings``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar, cast

import pulumi
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dataplatform.project import DEFAULT_VERSION
from jobs.quantity import CPU_RE, MEMORY_RE, cpu_millis, memory_bytes

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Standard five-field cron, or the @-macros the Spark Operator accepts.
CRON_RE = re.compile(r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly|every \S+)|(\S+\s+){4}\S+)$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A Kubernetes object name such as a Secret's: a DNS subdomain.
DNS_SUBDOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# A Prometheus duration such as 30s, 5m or 1h30m.
PROM_DURATION_RE = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


def keyed(key: str, message: str) -> ValueError:
    """An error found across fields, pinned to the key the user should change."""
    return ValueError(f"[{key}] {message}")


class SettingsError(pulumi.RunError):
    """A configuration problem; Pulumi prints the message without a traceback."""


class ConfigModel(BaseModel):
    """Config objects: camelCase keys as users write them, typos rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


def check_cpu(value: str) -> str:
    if not CPU_RE.match(value) or cpu_millis(value) <= 0:
        raise ValueError("must be a CPU quantity greater than zero, such as 250m, 1 or 1.5")
    return value


def check_memory(value: str) -> str:
    if not MEMORY_RE.match(value) or memory_bytes(value) <= 0:
        raise ValueError("must be a memory quantity greater than zero, such as 512Mi or 2Gi")
    return value


class Tier(StrEnum):
    """Where the stack deploys: the local Docker engine or a Kubernetes cluster."""

    DOCKER = "docker"
    KUBERNETES = "kubernetes"


class Resources(ConfigModel):
    """Requests and limits of one workload, as configured and as deployed.
    Kubernetes applies all four; the Docker target applies ``memoryLimit``
    only (CPU is shared on one host)."""

    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None

    _cpu = field_validator("cpu_request", "cpu_limit")(lambda v: None if v is None else check_cpu(v))
    _memory = field_validator("memory_request", "memory_limit")(check_memory)

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        if memory_bytes(self.memory_limit) < memory_bytes(self.memory_request):
            raise keyed(
                "memoryLimit",
                f"{self.memory_limit} is below memoryRequest {self.memory_request}",
            )
        if self.cpu_limit and cpu_millis(self.cpu_limit) < cpu_millis(self.cpu_request):
            raise keyed("cpuLimit", f"{self.cpu_limit} is below cpuRequest {self.cpu_request}")
        return self

    @classmethod
    def of(cls, cpu: str, memory: str, limit: str) -> Resources:
        """A default: CPU and memory requested, memory limited."""
        return cls(cpu_request=cpu, memory_request=memory, memory_limit=limit)


class Scaling(ConfigModel):
    """A replicated service's settings: ``replicas`` run at least, and in prod
    an autoscaler may add up to ``maxReplicas``."""

    replicas: int = Field(2, ge=1, le=100)
    max_replicas: int = Field(6, ge=1, le=100)

    @model_validator(mode="after")
    def _replica_range(self) -> Scaling:
        if self.replicas > self.max_replicas:
            raise keyed("replicas", f"{self.replicas} is above maxReplicas {self.max_replicas}")
        return self


class Buckets(ConfigModel):
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
            raise keyed("events" if names[3] in names[:3] else "lake", "bucket names must be distinct")
        return self


class DnsSettings(ConfigModel):
    """Where the cluster's DNS pods run: the only destination of DNS traffic."""

    namespace: str = "kube-system"
    pod_labels: dict[str, str] = {"k8s-app": "kube-dns"}

    @field_validator("pod_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give at least one label of the DNS pods (an empty selector selects every pod)")
        return value


class KubernetesSettings(ConfigModel):
    namespace: str = "dataplatform"
    version: str = "1.33"
    render_dir: str | None = None
    kubeconfig_context: str | None = None
    # Where pods that use the API (Spark drivers) may connect: the API
    # server's endpoint addresses (on 443 and 6443). Empty: read at deploy
    # from the cluster (the ``default/kubernetes`` EndpointSlice, addresses
    # and port); there is no any-address fallback.
    api_server_cidrs: list[str] = []
    dns: DnsSettings = DnsSettings()
    # Where Spark jobs run, apart from the services and their secrets.
    # None: ``<namespace>-jobs``.
    jobs_namespace: str | None = None

    @property
    def jobs(self) -> str:
        """The namespace Spark jobs run in."""
        return self.jobs_namespace or f"{self.namespace}-jobs"

    @field_validator("jobs_namespace")
    @classmethod
    def _jobs_dns(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL_RE.match(value):
            raise ValueError("must be a DNS label: lowercase letters, digits and '-'")
        return value

    @model_validator(mode="after")
    def _jobs_apart(self) -> KubernetesSettings:
        if self.jobs == self.namespace:
            raise keyed(
                "jobsNamespace",
                f"must differ from namespace ({self.namespace!r}): jobs run apart from the services' secrets",
            )
        if len(self.jobs) > 63:
            raise keyed("jobsNamespace", f"{self.jobs!r} is longer than 63 characters; name one")
        return self

    @model_validator(mode="after")
    def _api_server_known(self) -> KubernetesSettings:
        if self.render_dir and not self.api_server_cidrs:
            raise keyed(
                "apiServerCidrs",
                "rendering to a directory reads no cluster, so the API server's addresses must be given "
                "(the only destinations Spark pods may reach on 443/6443), such as [10.0.0.1/32]",
            )
        return self

    @field_validator("api_server_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR block such as 10.0.0.1/32") from None
        return value

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


C = TypeVar("C")


@dataclass(frozen=True)
class Section(Generic[C]):
    """A top-level config key a service owns, validated by ``annotation``.

    ``field`` is the Python name; users write it in camelCase
    (``spark_jobs`` is ``dataplatform:sparkJobs``).
    """

    field: str
    annotation: Any
    default: C

    def of(self, settings: Settings) -> C:
        return cast(C, getattr(settings, self.field))


class Settings(ConfigModel):
    """The platform-wide keys. The keys each service declares in its spec
    (its sections, host ports, image, volume sizes, resource overrides) are
    added by ``dataplatform.settings.settings_model``; the accessors below read
    them by their Python names (``spark_master``)."""

    target: Tier = Tier.DOCKER
    version: str = DEFAULT_VERSION
    image_registry: str | None = None
    # Kubernetes only: Secrets (of type kubernetes.io/dockerconfigjson) every
    # pod pulls its image with, the Spark Operator's and Spark's included.
    image_pull_secrets: list[str] = []
    build_images: bool = True
    build_ca_file: str | None = None
    bind_address: str = "127.0.0.1"
    purge_on_destroy: bool = False
    buckets: Buckets = Buckets()
    kubernetes: KubernetesSettings = KubernetesSettings()
    resources: dict[str, Resources] = {}

    @field_validator("version")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", value) or value == "latest":
            raise ValueError("must be an image tag other than latest, such as 0.1.0")
        return value

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not DNS_SUBDOMAIN_RE.match(name):
                raise ValueError(f"{name!r} is not a Secret name (lowercase letters, digits, '-', '.')")
        if len(set(value)) != len(value):
            raise ValueError("names a Secret twice")
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

    @property
    def is_docker(self) -> bool:
        return self.target is Tier.DOCKER

    def resources_for(self, workload: str, default: Resources) -> Resources:
        return self.resources.get(workload, default)

    def host_port(self, name: str) -> int:
        return int(getattr(getattr(self, "host_ports"), name))  # noqa: B009

    def image(self, name: str) -> str | None:
        """The configured reference; None for a project image left to the target."""
        return cast(str | None, getattr(getattr(self, "images"), name))  # noqa: B009

    def pinned_image(self, name: str) -> str:
        """A third-party image: always has a pinned default."""
        ref = self.image(name)
        assert ref is not None, f"{name} is not a third-party image"
        return ref

    def storage_size(self, name: str) -> str:
        return str(getattr(getattr(self, "storage"), name))  # noqa: B009

    @property
    def storage_class(self) -> str | None:
        return cast(str | None, getattr(self, "storage").storage_class)  # noqa: B009
