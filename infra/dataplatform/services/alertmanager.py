"""Alertmanager: receives the alerts Prometheus fires, groups and routes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from dataplatform.config import Resources
from dataplatform.monitoring.alertmanager import config_yaml
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.services.common import prometheus_family_server
from dataplatform.targets import Target
from dataplatform.workload import File, Metrics

PORT = 9093
NAME = "alertmanager"
CONFIG_DIR = "/etc/alertmanager"
DEPLOY = Deploy(
    "prom/alertmanager:v0.28.1", Resources.of("50m", "64Mi", "256Mi"), host_port=PORT, storage_size="1Gi"
)


@dataclass(frozen=True)
class AlertmanagerArgs:
    """What Alertmanager is built from; the defaults make a minimal call work."""

    deploy: Deploy = DEPLOY


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
            NAME,
            args.deploy,
            port=PORT,
            config=File(f"{CONFIG_DIR}/alertmanager.yml", config_yaml()),
            storage_flag="--storage.path",
            storage_path="/alertmanager",
            # A single replica has no peers to gossip with.
            last_args=("--cluster.listen-address=",),
            metrics=Metrics(PORT),
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
    return Alertmanager(
        ctx.target.names.of(NAME), AlertmanagerArgs(ctx.deploy(NAME, DEPLOY)), ctx.target, ctx.opts
    )


SPEC = ServiceSpec.single(NAME, build, DEPLOY)
