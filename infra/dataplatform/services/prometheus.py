"""Prometheus: scrapes every workload that declares a metrics endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import yaml
from pydantic import field_validator

from dataplatform.config import PROM_DURATION_RE, ConfigModel, Resources, Section
from dataplatform.monitoring.rules import rules_yaml
from dataplatform.services.alertmanager import Alertmanager
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.services.common import prometheus_family_server
from dataplatform.targets import Target
from dataplatform.workload import File, Metrics, PodScrape, Workload

PORT = 9090
NAME = "prometheus"
CONFIG_DIR = "/etc/prometheus"
DEPLOY = Deploy(
    "prom/prometheus:v3.5.0", Resources.of("200m", "512Mi", "1Gi"), host_port=PORT, storage_size="10Gi"
)


def _check_duration(value: str) -> str:
    if not value or not PROM_DURATION_RE.match(value):
        raise ValueError("must be a Prometheus duration such as 30s, 5m or 1h")
    return value


class MonitoringSettings(ConfigModel):
    """How often Prometheus scrapes and evaluates, and per-alert ``for``
    overrides (alert name -> duration), e.g. short ones for a test stack."""

    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    alert_for: dict[str, str] = {}

    _durations = field_validator("scrape_interval", "evaluation_interval")(_check_duration)

    @field_validator("alert_for")
    @classmethod
    def _known_alerts(cls, value: dict[str, str]) -> dict[str, str]:
        from dataplatform.monitoring.rules import ALERT_NAMES

        unknown = sorted(set(value) - set(ALERT_NAMES))
        if unknown:
            raise ValueError(f"unknown alert {', '.join(unknown)}; allowed: {', '.join(ALERT_NAMES)}")
        for duration in value.values():
            _check_duration(duration)
        return value


CONFIG = Section("monitoring", MonitoringSettings, MonitoringSettings())


def _dns_job(name: str, path: str, scheme: str, host: str, port: int, refresh: str) -> dict[str, object]:
    return {
        "job_name": name,
        "metrics_path": path,
        "scheme": scheme,
        "dns_sd_configs": [{"names": [host], "type": "A", "port": port, "refresh_interval": refresh}],
    }


def scrape_config(
    workloads: list[Workload],
    target: Target,
    monitoring: MonitoringSettings,
    alertmanager: str | None = None,
    pod_scrapes: tuple[PodScrape, ...] = (),
) -> str:
    """The Prometheus configuration: one job per workload with metrics, one
    per pod scrape, and the Alertmanager it sends alerts to (``host:port``).

    DNS discovery (A records) finds every replica in both tiers: Docker's
    resolver answers a network alias with each container, a headless
    Kubernetes Service with each ready pod. Pods no workload declares
    (Spark's drivers) have a headless Service of their own, selecting them
    by their labels (``PodScrape``).
    """
    jobs: list[dict[str, object]] = [
        {"job_name": NAME, "static_configs": [{"targets": [f"127.0.0.1:{PORT}"]}]}
    ]
    for workload in workloads:
        metrics = workload.metrics
        if metrics is None:
            continue
        host = target.metrics_host(workload)
        jobs.append(_dns_job(workload.name, metrics.path, metrics.scheme, host, metrics.port, "30s"))
    for scrape in pod_scrapes:
        # A job's driver may live under a minute: looked for more often.
        refresh = "5s" if scrape.transient else "30s"
        jobs.append(_dns_job(scrape.job, scrape.path, "http", scrape.host, scrape.port, refresh))
    config: dict[str, object] = {
        "global": {
            "scrape_interval": monitoring.scrape_interval,
            "evaluation_interval": monitoring.evaluation_interval,
            "external_labels": {"platform": "dataplatform"},
        },
        "rule_files": [f"{CONFIG_DIR}/rules.yml"],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config["scrape_configs"] = jobs
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True)
class PrometheusArgs:
    """What Prometheus is built from: the workloads it scrapes and where
    alerts go (reached on its first port by its name); the rest has
    defaults. ``pod_scrapes`` (Kubernetes only) are pods no workload
    declares, found by their labels."""

    scraped: list[Workload]
    alertmanager: Workload | None = None
    pod_scrapes: tuple[PodScrape, ...] = ()
    config: MonitoringSettings = field(default_factory=MonitoringSettings)
    deploy: Deploy = DEPLOY


class Prometheus(Service):
    """Prometheus on 9090 with its configuration generated from the declared
    workloads (one source of truth) and the alert rules of ``monitoring/``:
    one ``ServiceDown`` rule per scrape job, plus the services' own alerts.

    Defaults: runs as ``nobody``, TSDB on a persistent volume, 15 days of
    retention, no admin API and no remote write.
    """

    url: pulumi.Output[str]
    config: str
    rules: str

    def __init__(
        self, name: str, args: PrometheusArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Prometheus", name, None, opts)
        alertmanager = args.alertmanager
        address = f"{alertmanager.name}:{alertmanager.ports[0].container_port}" if alertmanager else None
        self.config = scrape_config(args.scraped, target, args.config, address, args.pod_scrapes)
        # Transient pods (a job's driver) come and go: no target is no outage.
        jobs = [
            NAME,
            *(w.name for w in args.scraped if w.metrics),
            *(s.job for s in args.pod_scrapes if not s.transient),
        ]
        self.rules = rules_yaml(jobs, args.config.alert_for)
        workload = prometheus_family_server(
            NAME,
            args.deploy,
            port=PORT,
            config=File(f"{CONFIG_DIR}/prometheus.yml", self.config),
            files=(File(f"{CONFIG_DIR}/rules.yml", self.rules),),
            storage_flag="--storage.tsdb.path",
            storage_path="/prometheus",
            extra_args=("--storage.tsdb.retention.time=15d",),
            talks_to=tuple(
                dict.fromkeys(
                    # Only the metrics port of each: a scraper needs no other.
                    [f"{w.name}:{w.port_of(w.metrics.port).name}" for w in args.scraped if w.metrics]
                    + ([alertmanager.name] if alertmanager else [])
                )
            ),
            scrapes_pods=args.pod_scrapes,
        )
        self.workload = workload
        self.deployment = target.deploy(workload, self)
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"prometheus_url": self.url}


def build(ctx: Context) -> Prometheus:
    alertmanager = ctx.services.get("alertmanager")
    args = PrometheusArgs(
        ctx.scraped(),
        alertmanager=alertmanager.workload if isinstance(alertmanager, Alertmanager) else None,
        pod_scrapes=tuple(ctx.pod_scrapes()),
        config=CONFIG.of(ctx.settings),
        deploy=ctx.deploy(NAME, DEPLOY),
    )
    return Prometheus(ctx.target.names.of(NAME), args, ctx.target, ctx.opts)


SPEC = ServiceSpec.single(NAME, build, DEPLOY, sections=(CONFIG,))


__all__ = ["SPEC", "Metrics", "MonitoringSettings", "Prometheus", "PrometheusArgs", "scrape_config"]
