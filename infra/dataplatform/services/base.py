"""What a service module declares, and what the platform gives it to build with.

A service module holds one ``ServiceSpec``: the config it owns (its
sections, host ports, images, volume sizes, resource overrides, checks
across keys) and ``build``, which resolves the service's own args from the
settings and creates its component. ``dataplatform.services.catalog`` lists the
specs; ``dataplatform.settings`` assembles their keys and the platform builds them
in that order. Components never see the whole ``Settings``: only ``build``
does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import pulumi

from dataplatform.config import Resources, Section, Settings
from dataplatform.targets import Target
from dataplatform.workload import ImageRef, PodScrape, ProjectImage, Volume, Workload, WorkloadError

if TYPE_CHECKING:
    from dataplatform.supply import Supply


class Service(pulumi.ComponentResource):
    """A service's component. ``scraped``: its workloads Prometheus scrapes;
    ``pod_scrapes``: pods of its own it did not declare as workloads that
    Prometheus scrapes (Kubernetes only); ``outputs()``: its stack outputs;
    ``shared_credentials()``: what it adds to the ``platform_credentials`` output."""

    scraped: list[Workload]
    pod_scrapes: list[PodScrape]

    def __init__(
        self,
        t: str,
        name: str,
        props: dict[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(t, name, props, opts)
        self.scraped = []
        self.pod_scrapes = []

    def outputs(self) -> dict[str, Any]:
        return {}

    def shared_credentials(self) -> dict[str, pulumi.Input[str]]:
        return {}


S = TypeVar("S", bound=Service)


def resolved_image(settings: Settings, name: str, default: ImageRef) -> ImageRef:
    """The image ``images.<name>`` names. A project image left unset is built
    (dev) or pulled (prod) at the stack's ``version``."""
    if isinstance(default, ProjectImage):
        return replace(default, tag=settings.version, override=settings.image(name))
    return settings.pinned_image(name)


@dataclass(frozen=True)
class Deploy:
    """How a service's main workload is deployed, whichever the service: its
    image, its resources, the port it publishes on the dev host and the size
    of its volume. A service module states its defaults in one; a program
    that builds the component itself may pass its own."""

    image: ImageRef
    resources: Resources
    host_port: int | None = None
    storage_size: str | None = None

    def volume(self, mount_path: str) -> Volume:
        """The workload's persistent volume, ``data``, of ``storage_size``."""
        if self.storage_size is None:
            raise WorkloadError(f"a volume at {mount_path} needs a storage size")
        return Volume("data", mount_path, self.storage_size)


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

    def deploy(self, name: str, default: Deploy, host_port: str | None = None) -> Deploy:
        """``default`` with the stack's settings for workload ``name`` applied:
        ``images.<name>``, ``hostPorts.<host_port or name>``,
        ``storage.<name>`` and ``resources.<name>``."""
        settings = self.settings
        return Deploy(
            image=resolved_image(settings, name, default.image),
            resources=settings.resources_for(name, default.resources),
            host_port=None if default.host_port is None else settings.host_port(host_port or name),
            storage_size=None if default.storage_size is None else settings.storage_size(name),
        )

    def scraped(self) -> list[Workload]:
        """Every workload with metrics of the services built so far."""
        return [w for s in self.services.values() for w in s.scraped if w.metrics]

    def pod_scrapes(self) -> list[PodScrape]:
        """Every pod scrape of the services built so far."""
        return [p for s in self.services.values() for p in s.pod_scrapes]


# Compared and hashed by identity: the settings model is cached per set of specs.
@dataclass(frozen=True, eq=False)
class ServiceSpec:
    """One service, as the catalogue lists it.

    Keys are Python names; users write them in camelCase under
    ``dataplatform:hostPorts``, ``images``, ``storage`` and ``resources``.
    An image default of None marks an image this repository builds.
    ``s3_access`` asks MinIO for a user named after the service with
    access to bucket roles (``raw``, ``lake``, ``models``, ``events``).

    On Kubernetes the platform pins what the service deploys before it
    declares anything (``dataplatform.pinning``): ``images_used`` gets the
    references of its ``images`` keys (``images.<name>``, as configured or
    defaulted) and returns those the stack deploys, with any image it names
    under another key (default: all of them); ``pin_artifacts`` checks what
    the service fetches at deploy time (a chart) and returns the settings
    to build with.
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
    images_used: Callable[[Settings, dict[str, str]], dict[str, str]] | None = None
    pin_artifacts: Callable[[Settings, Supply], Settings] | None = None

    @classmethod
    def single(
        cls, name: str, build: Callable[[Context], Service | None], deploy: Deploy, **more: Any
    ) -> ServiceSpec:
        """The spec of a service of one workload named like it, whose keys are
        those of ``deploy``'s defaults (see ``Context.deploy``)."""
        image = deploy.image
        return cls(
            name=name,
            build=build,
            host_ports={} if deploy.host_port is None else {name: deploy.host_port},
            images={name: None if isinstance(image, ProjectImage) else image},
            storage={} if deploy.storage_size is None else {name: deploy.storage_size},
            workloads=(name,),
            **more,
        )
