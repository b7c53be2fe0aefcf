"""Assembles the config model from the service specs it is given, and turns
raw config values into ``Settings`` or one error naming each bad key.

The platform-wide keys and the shared types are in ``dataplatform.config``; each
service declares its own keys in its ``ServiceSpec``. This module sits above
the service catalogue and never imports it: callers pass the specs
(``stack_config`` passes the catalogue's, tests pass their own).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dataplatform.config import ConfigModel, Settings, SettingsError, Tier, check_memory, keyed
from dataplatform.images import ImageReferenceError, names_a_registry
from dataplatform.project import PROJECT

if TYPE_CHECKING:
    from dataplatform.services.base import ServiceSpec

Specs = Sequence["ServiceSpec"]


def workload_names(specs: Specs) -> tuple[str, ...]:
    """Workloads whose resources may be overridden under ``dataplatform:resources``."""
    return tuple(name for spec in specs for name in spec.workloads)


def stack_images(settings: Settings, specs: Specs) -> dict[str, str]:
    """Every image the stack deploys, by the config key that names it
    (``images.redis``, ``sparkOperator.image``), as configured or defaulted.
    A project image left unset is ``<name>:<version>``, a repository under
    ``imageRegistry`` like every reference that names no registry."""
    found: dict[str, str] = {}
    for spec in specs:
        own = {
            f"images.{to_camel(name)}": settings.image(name) or f"{name}:{settings.version}"
            for name in spec.images
        }
        found.update(spec.images_used(settings, own) if spec.images_used else own)
    return found


def _host_ports_model(specs: Specs) -> type[ConfigModel]:
    fields: dict[str, Any] = {
        name: (int, Field(default, ge=1, le=65535))
        for spec in specs
        for name, default in spec.host_ports.items()
    }

    def no_collision(self: ConfigModel) -> ConfigModel:
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
        __base__=ConfigModel,
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


def _images_model(specs: Specs) -> type[ConfigModel]:
    fields: dict[str, Any] = {
        name: (str | None, default) for spec in specs for name, default in spec.images.items()
    }
    return create_model(
        "Images",
        __base__=ConfigModel,
        __doc__="Image references. Project images left unset are built (dev) or pulled from "
        "``imageRegistry`` (prod); third-party images default to pinned official releases.",
        __validators__={"_pinned": field_validator("*")(_pinned)},
        **fields,
    )


def _storage_model(specs: Specs) -> type[ConfigModel]:
    sizes = {name: default for spec in specs for name, default in spec.storage.items()}
    fields: dict[str, Any] = {name: (str, default) for name, default in sizes.items()}
    fields["storage_class"] = (str | None, None)
    return create_model(
        "StorageSettings",
        __base__=ConfigModel,
        __doc__="Sizes of the persistent volumes (Kubernetes PVCs; Docker ignores sizes).",
        __validators__={"_memory": field_validator(*sizes)(check_memory)} if sizes else {},
        **fields,
    )


def _validators(specs: Specs) -> dict[str, Any]:
    """Checks that need the specs: which workloads exist, where the images
    come from, and each service's checks across keys."""
    names = workload_names(specs)

    def known_workloads(cls: type[Settings], value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"unknown workload {', '.join(unknown)}; allowed: {', '.join(names)}")
        return value

    def images_have_a_registry(self: Settings) -> Settings:
        # On Kubernetes every image comes from a registry: an image that
        # names none (a project image left unset, a default such as
        # redis:7.4.5-bookworm) is a repository under imageRegistry.
        if self.target is Tier.KUBERNETES and not self.image_registry:
            missing = []
            for key, ref in stack_images(self, specs).items():
                try:
                    if not names_a_registry(ref):
                        missing.append(key)
                except ImageReferenceError:
                    pass  # not a reference at all: pinning names it
            if missing:
                raise keyed(
                    "imageRegistry",
                    f"is required when target is kubernetes: {', '.join(missing)} name no registry "
                    "and are pulled from it; set it (e.g. registry.example.com/dataplatform), or give "
                    "each of them in full with its registry (registry.example.com/redis:7.4.5)",
                )
        return self

    def services_checks(self: Settings) -> Settings:
        for spec in specs:
            if spec.check is not None:
                spec.check(self)
        return self

    return {
        "_known_workloads": field_validator("resources")(classmethod(known_workloads)),  # type: ignore[arg-type]
        "_images_have_a_registry": model_validator(mode="after")(images_have_a_registry),
        "_services_checks": model_validator(mode="after")(services_checks),
    }


@functools.cache
def _model(specs: tuple[ServiceSpec, ...]) -> type[Settings]:
    host_ports, images, storage = _host_ports_model(specs), _images_model(specs), _storage_model(specs)
    fields: dict[str, Any] = {
        "host_ports": (host_ports, host_ports()),
        "images": (images, images()),
        "storage": (storage, storage()),
    }
    for spec in specs:
        for section in spec.sections:
            fields[section.field] = (section.annotation, section.default)
    return create_model("Settings", __base__=Settings, __validators__=_validators(specs), **fields)


def settings_model(specs: Specs) -> type[Settings]:
    """``Settings`` with the keys of every spec given."""
    return _model(tuple(specs))


def _format_error(error: Any, model: type[BaseModel]) -> str:
    loc = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    # Pydantic appends the validator's tag to some locations; keep user keys only.
    key = f"{PROJECT}:" + ".".join(loc) if loc else f"{PROJECT}"
    if error["type"] == "extra_forbidden":
        parent = allowed_keys(model).get(tuple(loc[:-1]))
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


def allowed_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """The keys users may write, as they write them, under each path of ``model``."""
    result: dict[tuple[str, ...], list[str]] = {}
    result[prefix] = [f.alias or n for n, f in model.model_fields.items()]
    for name, field in model.model_fields.items():
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                result.update(allowed_keys(candidate, (*prefix, field.alias or name)))
    return result


def parse_settings(raw: dict[str, Any], specs: Specs) -> Settings:
    """Validate raw config values (keys without the project prefix)."""
    model = settings_model(specs)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [_format_error(e, model) for e in exc.errors()]
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
