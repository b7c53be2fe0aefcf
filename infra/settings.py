"""Every configuration key of the project, typed and validated in one place.

The platform-wide keys are declared here; each service declares its own
(sections, host ports, images, volume sizes, resource overrides) in its
``ServiceSpec``, and ``settings_model()`` adds them from the registry.
The Pulumi program reads nothing from ``pulumi.Config`` outside this module.
A bad value stops the program before any resource is declared, with one
message per problem that names the key, the value given and what is allowed.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar, cast

import pulumi
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
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


def keyed(key: str, message: str) -> ValueError:
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


def check_cpu(value: str) -> str:
    if not CPU_RE.match(value) or cpu_millis(value) <= 0:
        raise ValueError("must be a CPU quantity greater than zero, such as 250m, 1 or 1.5")
    return value


def check_memory(value: str) -> str:
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

    _cpu = field_validator("cpu_request", "cpu_limit")(lambda v: None if v is None else check_cpu(v))
    _memory = field_validator("memory_request", "memory_limit")(check_memory)

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> ResourceSettings:
        if memory_bytes(self.memory_limit) < memory_bytes(self.memory_request):
            raise keyed(
                "memoryLimit",
                f"{self.memory_limit} is below memoryRequest {self.memory_request}",
            )
        if self.cpu_limit and cpu_millis(self.cpu_limit) < cpu_millis(self.cpu_request):
            raise keyed("cpuLimit", f"{self.cpu_limit} is below cpuRequest {self.cpu_request}")
        return self


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
            raise keyed("events" if names[3] in names[:3] else "lake", "bucket names must be distinct")
        return self


class KubernetesSettings(_Model):
    namespace: str = "dataplatform"
    version: str = "1.33"
    render_dir: str | None = None
    kubeconfig_context: str | None = None
    # Where pods that use the API (Spark drivers) may connect: the API
    # server's endpoint addresses. Empty: any address on ports 443/6443.
    api_server_cidrs: list[str] = []

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


class ConfigModel(_Model):
    """Base of a service's own config object (``dataplatform:<key>``)."""


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


class Settings(_Model):
    """The platform-wide keys. The keys of each service (its section, host
    ports, image, volume sizes, resource overrides) come from the service
    modules through ``infra.services.registry``; ``settings_model()`` is
    this class with them added, and what ``parse_settings`` returns."""

    target: Target = Target.DOCKER
    version: str = "0.1.0"
    image_registry: str | None = None
    build_images: bool = True
    build_ca_file: str | None = None
    bind_address: str = "127.0.0.1"
    purge_on_destroy: bool = False
    buckets: Buckets = Buckets()
    kubernetes: KubernetesSettings = KubernetesSettings()
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
        names = workload_names()
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"unknown workload {', '.join(unknown)}; allowed: {', '.join(names)}")
        return value

    @model_validator(mode="after")
    def _prod_needs_registry(self) -> Settings:
        if self.target is Target.KUBERNETES and not self.image_registry:
            missing = [name for name in project_image_names() if self.image(name) is None]
            if missing:
                raise keyed(
                    "imageRegistry",
                    "is required when target is kubernetes: the project's own images "
                    f"({', '.join(missing)}) are pulled from it; set it, or give each of "
                    "them in dataplatform:images",
                )
        for spec in _specs():
            if spec.check is not None:
                spec.check(self)
        return self

    @property
    def is_docker(self) -> bool:
        return self.target is Target.DOCKER

    def resources_for(self, workload: str, default: ResourceSettings) -> ResourceSettings:
        return self.resources.get(workload, default)

    # The keys services declare, by their Python names (``spark_master``).

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


def _specs() -> tuple[Any, ...]:
    # Imported here: service modules import this one for its types.
    from infra.services import registry

    return registry.SERVICES


def workload_names() -> tuple[str, ...]:
    """Workloads whose resources may be overridden under ``dataplatform:resources``."""
    return tuple(name for spec in _specs() for name in spec.workloads)


def project_image_names() -> tuple[str, ...]:
    """The images this repository builds (no default reference)."""
    return tuple(name for spec in _specs() for name, ref in spec.images.items() if ref is None)


def _host_ports_model() -> type[_Model]:
    fields: dict[str, Any] = {
        name: (int, Field(default, ge=1, le=65535))
        for spec in _specs()
        for name, default in spec.host_ports.items()
    }

    def no_collision(self: _Model) -> _Model:
        # A port the stack set collides with one it left alone: name the one it set.
        given = self.model_dump(by_alias=True)
        defaults = {(f.alias or n): f.default for n, f in type(self).model_fields.items()}
        order = [k for k in given if given[k] == defaults[k]] + [k for k in given if given[k] != defaults[k]]
        seen: dict[int, str] = {}
        for name in order:
            port = given[name]
            if port in seen:
                raise keyed(
                    name,
                    f"port {port} is already given to {seen[port]}; every published port must be distinct",
                )
            seen[port] = name
        return self

    return create_model(
        "HostPorts",
        __base__=_Model,
        __doc__="Dev tier only: ports published on ``bindAddress``. Container ports stay fixed.",
        __validators__={"_no_collision": model_validator(mode="after")(no_collision)},  # type: ignore[dict-item]
        **fields,
    )


def _pinned(value: str | None) -> str | None:
    if value is None:
        return value
    name = value.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if "@sha256:" not in value and (not tag or tag == "latest"):
        raise ValueError("must be pinned to a version tag or digest, not latest or untagged")
    return value


def _images_model() -> type[_Model]:
    fields: dict[str, Any] = {
        name: (str | None, default) for spec in _specs() for name, default in spec.images.items()
    }
    return create_model(
        "Images",
        __base__=_Model,
        __doc__="Image references. Project images left unset are built (dev) or pulled from "
        "``imageRegistry`` (prod); third-party images default to pinned official releases.",
        __validators__={"_pinned": field_validator("*")(_pinned)},
        **fields,
    )


def _storage_model() -> type[_Model]:
    sizes = {name: default for spec in _specs() for name, default in spec.storage.items()}
    fields: dict[str, Any] = {name: (str, default) for name, default in sizes.items()}
    fields["storage_class"] = (str | None, None)
    return create_model(
        "StorageSettings",
        __base__=_Model,
        __doc__="Sizes of the persistent volumes (Kubernetes PVCs; Docker ignores sizes).",
        __validators__={"_memory": field_validator(*sizes)(check_memory)} if sizes else {},
        **fields,
    )


@functools.cache
def settings_model() -> type[Settings]:
    """``Settings`` with every registered service's keys."""
    host_ports, images, storage = _host_ports_model(), _images_model(), _storage_model()
    fields: dict[str, Any] = {
        "host_ports": (host_ports, host_ports()),
        "images": (images, images()),
        "storage": (storage, storage()),
    }
    for spec in _specs():
        for section in spec.sections:
            fields[section.field] = (section.annotation, section.default)
    return create_model("Settings", __base__=Settings, **fields)


def _format_error(error: Any) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    # Pydantic appends the validator's tag to some locations; keep user keys only.
    key = f"{PROJECT}:" + ".".join(loc) if loc else f"{PROJECT}"
    if error["type"] == "extra_forbidden":
        parent = _allowed_keys(settings_model()).get(tuple(loc[:-1]))
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


def parse_settings(raw: dict[str, Any]) -> Settings:
    """Validate raw config values (keys without the project prefix)."""
    try:
        return settings_model().model_validate(raw)
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
    for key in sorted(set(_allowed_keys(settings_model())[()]) | _stack_file_keys()):
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
