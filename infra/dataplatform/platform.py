"""The whole platform: every registered service, wired together, on the chosen target."""

from __future__ import annotations

from typing import Any

import pulumi

from dataplatform.config import Settings
from dataplatform.services.base import Context, Service, ServiceSpec
from dataplatform.services.catalog import SERVICES
from dataplatform.targets import Target
from dataplatform.targets.docker import DockerOptions, DockerTarget
from dataplatform.targets.kubernetes import KubernetesOptions, KubernetesTarget
from dataplatform.workload import WorkloadError


def make_target(settings: Settings, stack: str, parent: pulumi.Resource) -> Target:
    """The stack's target, handed only the settings of its own tier."""
    if settings.is_docker:
        return DockerTarget(
            DockerOptions(
                bind_address=settings.bind_address,
                build_images=settings.build_images,
                build_ca_file=settings.build_ca_file,
                purge_on_destroy=settings.purge_on_destroy,
            ),
            stack,
            parent,
        )
    return KubernetesTarget(
        KubernetesOptions(
            cluster=settings.kubernetes,
            image_registry=settings.image_registry or "",
            storage_class=settings.storage_class,
            purge_on_destroy=settings.purge_on_destroy,
        ),
        stack,
        parent,
    )


class Platform(pulumi.ComponentResource):
    """Every service of ``specs`` (the catalogue's by default), built in their order.

    Services reach each other by name (``redis``, ``minio``, ...) in both
    tiers. Each service gets only the credentials it needs: Spark a MinIO
    user with read-write access to the data buckets, inference a user that
    can only read the models bucket, the gateway no MinIO access at all.
    """

    target: Target
    services: dict[str, Service]
    outputs: dict[str, Any]

    def __init__(
        self,
        name: str,
        settings: Settings,
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
        specs: tuple[ServiceSpec, ...] = SERVICES,
    ) -> None:
        super().__init__("dataplatform:index:Platform", name, None, opts)
        self.settings = settings
        self.target = make_target(settings, stack, self)
        context = Context(settings, self.target, self, specs)
        for spec in specs:
            service = spec.build(context)
            if service is not None:
                context.services[spec.name] = service
        self.services = context.services
        self._check_names()
        self.target.finalize()

        self.outputs = {"target": settings.target.value, "buckets": settings.buckets.model_dump()}
        credentials: dict[str, pulumi.Input[str]] = {}
        for service in self.services.values():
            self.outputs.update(service.outputs())
            credentials.update(service.shared_credentials())
        self.outputs["platform_credentials"] = pulumi.Output.secret(credentials)
        self.register_outputs({})

    def _check_names(self) -> None:
        """Every ``depends_on``/``talks_to`` names a declared workload."""
        deployed = self.target.deployed
        names = set(deployed)
        for workload in deployed.values():
            for other in (*workload.depends_on, *workload.talks_to):
                if other not in names:
                    raise WorkloadError(f"{workload.name}: names {other!r}, which is not a declared workload")
