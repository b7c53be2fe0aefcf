"""What a service module declares, and what the platform gives it to build with.

A service module holds one ``ServiceSpec``: the config it owns (its
sections, host ports, images, volume sizes, resource overrides, checks
across keys) and ``build``, which resolves the service's own args from the
settings and creates its component. ``infra.services.catalog`` lists the
specs; ``infra.settings`` assembles their keys and the platform builds them
in that order. Components never see the whole ``Settings``: only ``build``
does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi

from infra.config import Section, Settings
from infra.targets import Target
from infra.workload import Workload


class Service(pulumi.ComponentResource):
    """A service's component. ``scraped``: its workloads Prometheus scrapes;
    ``outputs()``: its stack outputs; ``shared_credentials()``: what it adds
    to the ``platform_credentials`` output."""

    scraped: list[Workload]

    def __init__(
        self,
        t: str,
        name: str,
        props: dict[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(t, name, props, opts)
        self.scraped = []

    def outputs(self) -> dict[str, Any]:
        return {}

    def shared_credentials(self) -> dict[str, pulumi.Input[str]]:
        return {}


S = TypeVar("S", bound=Service)


@dataclass
class Context:
    """What a spec's ``build`` gets: the settings, the target, the platform
    as parent and the services built before it."""

    settings: Settings
    target: Target
    parent: pulumi.Resource
    specs: tuple[ServiceSpec, ...]
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def opts(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.parent)

    def service(self, name: str, kind: type[S]) -> S:
        found = self.services.get(name)
        if not isinstance(found, kind):
            raise KeyError(f"service {name!r} is not built before the one asking for it")
        return found

    def scraped(self) -> list[Workload]:
        """Every workload with metrics of the services built so far."""
        return [w for s in self.services.values() for w in s.scraped if w.metrics]


# Compared and hashed by identity: the settings model is cached per set of specs.
@dataclass(frozen=True, eq=False)
class ServiceSpec:
    """One service, as the catalogue lists it.

    Keys are Python names; users write them in camelCase under
    ``dataplatform:hostPorts``, ``images``, ``storage`` and ``resources``.
    An image default of None marks an image this repository builds.
    ``s3_access`` asks MinIO for a user named after the service with
    access to bucket roles (``raw``, ``lake``, ``models``, ``events``).
    """

    name: str
    build: Callable[[Context], Service | None]
    sections: tuple[Section[Any], ...] = ()
    host_ports: Mapping[str, int] = field(default_factory=dict)
    images: Mapping[str, str | None] = field(default_factory=dict)
    storage: Mapping[str, str] = field(default_factory=dict)
    workloads: tuple[str, ...] = ()
    s3_access: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[Settings], None] | None = None
