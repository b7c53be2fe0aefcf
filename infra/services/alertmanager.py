"""Alertmanager: receives the alerts Prometheus fires, groups and routes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.config import Resources
from infra.services.base import Context, Service, ServiceSpec
from infra.services.common import prometheus_family_server
from infra.targets import Target
from infra.workload import File, Metrics
from monitoring.alertmanager import config_yaml

PORT = 9093
NAME = "alertmanager"
CONFIG_DIR = "/etc/alertmanager"
IMAGE = "prom/alertmanager:v0.28.1"
STORAGE = "1Gi"
RESOURCES = Resources.of("50m", "64Mi", "256Mi")


@dataclass(frozen=True)
class AlertmanagerArgs:
    """What Alertmanager is built from; the defaults make a minimal call work."""

    image: str = IMAGE
    host_port: int = PORT
    storage_size: str = STORAGE
    resources: Resources = RESOURCES


class Alertmanager(Service):
    """One Alertmanager on 9093, configured from ``monitoring/alertmanager.py``.

    Defaults: runs as ``nobody``, silences and notification state on a
    persistent volume, clustering off (a single replica has no peers).
    """

    url: pulumi.Output[str]
    address: str

    def __init__(
        self, name: str, args: AlertmanagerArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Alertmanager", name, None, opts)
        workload = prometheus_family_server(
            name=NAME,
            image=args.image,
            port=PORT,
            host_port=args.host_port,
            config=File(f"{CONFIG_DIR}/alertmanager.yml", config_yaml()),
            storage_flag="--storage.path",
            storage_path="/alertmanager",
            storage_size=args.storage_size,
            # A single replica has no peers to gossip with.
            last_args=("--cluster.listen-address=",),
            metrics=Metrics(PORT),
            resources=args.resources,
        )
        self.workload = workload
        self.scraped = [workload]
        self.deployment = target.deploy(workload, self)
        self.address = f"{self.deployment.host}:{PORT}"
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"alertmanager_url": self.url}


def build(ctx: Context) -> Alertmanager:
    settings = ctx.settings
    args = AlertmanagerArgs(
        image=settings.pinned_image(NAME),
        host_port=settings.host_port(NAME),
        storage_size=settings.storage_size(NAME),
        resources=settings.resources_for(NAME, RESOURCES),
    )
    return Alertmanager(NAME, args, ctx.target, ctx.opts)


SPEC = ServiceSpec(
    name=NAME,
    build=build,
    host_ports={NAME: PORT},
    images={NAME: IMAGE},
    storage={NAME: STORAGE},
    workloads=(NAME,),
)
