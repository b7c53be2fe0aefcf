"""Alertmanager: receives the alerts Prometheus fires, groups and routes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.services.base import Service, ServiceSpec
from infra.services.common import defaults, resources
from infra.settings import Settings
from infra.targets import Target
from infra.workload import File, Metrics, Port, Volume, Workload, http_check
from monitoring.alertmanager import config_yaml

PORT = 9093
NAME = "alertmanager"
USER = 65534
CONFIG_DIR = "/etc/alertmanager"


@dataclass(frozen=True)
class AlertmanagerArgs:
    settings: Settings


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
        settings = args.settings
        workload = Workload(
            name=NAME,
            image=settings.pinned_image(NAME),
            user=USER,
            group=USER,
            command=("alertmanager",),
            args=(
                f"--config.file={CONFIG_DIR}/alertmanager.yml",
                "--storage.path=/alertmanager",
                f"--web.listen-address=:{PORT}",
                "--cluster.listen-address=",
            ),
            files=(File(f"{CONFIG_DIR}/alertmanager.yml", config_yaml()),),
            ports=(Port("http", PORT, host_port=settings.host_port(NAME)),),
            volumes=(Volume("data", "/alertmanager", settings.storage_size(NAME)),),
            health=http_check(PORT, "/-/ready", via="wget"),
            metrics=Metrics(PORT),
            resources=resources(settings, NAME, defaults("50m", "64Mi", "256Mi")),
        )
        self.workload = workload
        self.scraped = [workload]
        self.deployment = target.deploy(workload, self)
        self.address = f"{self.deployment.host}:{PORT}"
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"alertmanager_url": self.url}


SPEC = ServiceSpec(
    name=NAME,
    build=lambda ctx: Alertmanager(NAME, AlertmanagerArgs(ctx.settings), ctx.target, ctx.opts),
    host_ports={NAME: PORT},
    images={NAME: "prom/alertmanager:v0.28.1"},
    storage={NAME: "1Gi"},
    workloads=(NAME,),
)
