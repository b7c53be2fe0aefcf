"""Grafana: dashboards over Prometheus, provisioned from files in the repo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from dataplatform.config import ConfigModel, Resources, Section, Settings
from dataplatform.monitoring import dashboard
from dataplatform.project import PACKAGE_DIR
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.services.common import generated_secret, secret_path
from dataplatform.targets import Target
from dataplatform.workload import File, Port, Workload, http_check

PORT = 3000
NAME = "grafana"
USER = 472
FILES = PACKAGE_DIR / "monitoring" / "grafana"


class GrafanaSettings(ConfigModel):
    enabled: bool = True


CONFIG = Section("grafana", GrafanaSettings, GrafanaSettings())
PROMETHEUS_URL = "http://prometheus:9090"
# Published on 3001: inference has 3000 on the dev host.
DEPLOY = Deploy(
    "grafana/grafana:12.2.0", Resources.of("100m", "128Mi", "512Mi"), host_port=3001, storage_size="1Gi"
)


@dataclass(frozen=True)
class GrafanaArgs:
    """What Grafana is built from; the defaults make a minimal call work."""

    prometheus_url: str = PROMETHEUS_URL
    deploy: Deploy = DEPLOY


class Grafana(Service):
    """Grafana on 3000 with the Prometheus data source from
    ``monitoring/grafana`` and the platform dashboard built by
    ``monitoring/dashboard.py`` (same files in both tiers).

    Defaults: admin password generated and read from a secret file; sign-up,
    anonymous access, update checks and plugin downloads off; state on a
    persistent volume.
    """

    admin_password: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: GrafanaArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Grafana", name, None, opts)
        self.admin_password = generated_secret(target.names.of("grafana-admin-password"), self)
        datasource = (FILES / "provisioning" / "datasources" / "prometheus.yaml").read_text()
        files = [
            File(secret_path("admin-password"), self.admin_password, secret=True),
            File(
                "/etc/grafana/provisioning/datasources/prometheus.yaml",
                datasource.replace("${PROMETHEUS_URL}", args.prometheus_url),
            ),
            File(
                "/etc/grafana/provisioning/dashboards/platform.yaml",
                (FILES / "provisioning" / "dashboards" / "platform.yaml").read_text(),
            ),
        ]
        files.append(File(f"/etc/grafana/dashboards/{dashboard.FILENAME}", dashboard.as_json()))
        workload = Workload(
            name=NAME,
            image=args.deploy.image,
            user=USER,
            group=USER,
            env={
                "GF_SECURITY_ADMIN_USER": "admin",
                "GF_SECURITY_ADMIN_PASSWORD__FILE": secret_path("admin-password"),
                "GF_SECURITY_DISABLE_INITIAL_ADMIN_CREATION": "false",
                "GF_USERS_ALLOW_SIGN_UP": "false",
                "GF_AUTH_ANONYMOUS_ENABLED": "false",
                "GF_ANALYTICS_REPORTING_ENABLED": "false",
                "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
                "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
                "GF_PLUGINS_PREINSTALL_DISABLED": "true",
                "GF_PATHS_DATA": "/var/lib/grafana",
                "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
                "GF_SERVER_HTTP_PORT": str(PORT),
            },
            files=tuple(files),
            ports=(Port("http", PORT, host_port=args.deploy.host_port),),
            volumes=(args.deploy.volume("/var/lib/grafana"),),
            health=http_check(PORT, "/api/health", via="wget", start_seconds=30),
            depends_on=("prometheus",),
            talks_to=("prometheus",),
            resources=args.deploy.resources,
        )
        self.workload = workload
        self.deployment = target.deploy(workload, self)
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"grafana_url": self.url, "grafana_admin_password": self.admin_password}


def build(ctx: Context) -> Grafana | None:
    # Left out where its image cannot be had; Prometheus keeps running.
    if not CONFIG.of(ctx.settings).enabled:
        return None
    return Grafana(
        ctx.target.names.of(NAME), GrafanaArgs(deploy=ctx.deploy(NAME, DEPLOY)), ctx.target, ctx.opts
    )


def images_used(settings: Settings, images: dict[str, str]) -> dict[str, str]:
    """Its image is pulled only when Grafana is deployed."""
    return images if CONFIG.of(settings).enabled else {}


SPEC = ServiceSpec.single(NAME, build, DEPLOY, sections=(CONFIG,), images_used=images_used)
