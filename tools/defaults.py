"""Defaults the services' specs declare (host-port keys, image references), read without the settings."""

from __future__ import annotations

from pydantic.alias_generators import to_camel

from dataplatform.project import DEFAULT_VERSION, image_reference
from dataplatform.services.catalog import SERVICES


def host_port_keys() -> tuple[str, ...]:
    """Every host port the dev tier publishes, as its config key (``hostPorts.<key>``)."""
    return tuple(to_camel(name) for spec in SERVICES for name in spec.host_ports)


def default_image(name: str, version: str = DEFAULT_VERSION) -> str:
    """The reference of image ``name`` for a stack that does not set
    ``images.<name>``: the pinned official release, or for an image this
    repository builds, its local build tagged ``version``."""
    for spec in SERVICES:
        if name in spec.images:
            reference = spec.images[name]
            return reference if reference is not None else image_reference(name, version)
    raise KeyError(f"no service declares an image named {name!r}")
