"""The Prometheus checks both tiers run: every configured job scraped and up, a
series of every catalogued metric, and an alert delivered to Alertmanager."""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import Any

import yaml

from dataplatform.monitoring import metrics
from tools.e2e_common.report import Failure, wait_for
from tools.e2e_common.web import http


def configured_jobs(url: str) -> set[str]:
    """The scrape jobs of the configuration Prometheus loaded: the ones the
    platform declared."""
    loaded = yaml.safe_load(http("GET", f"{url}/api/v1/status/config").json()["data"]["yaml"])
    return {str(job["job_name"]) for job in loaded.get("scrape_configs") or []}


def targets_up(url: str, timeout: float) -> list[dict[str, Any]]:
    """Prometheus's active targets, once every one of them is up and every
    job of its configuration has one (a job whose discovery finds nothing
    has no target at all, so "every target up" alone would not see it)."""

    def all_up() -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = http("GET", f"{url}/api/v1/targets").json()["data"]["activeTargets"]
        down = sorted(f"{t['labels']['job']} ({t['scrapeUrl']})" for t in targets if t["health"] != "up")
        # Drivers exist only while a Spark job runs.
        missing = sorted(
            configured_jobs(url) - {t["labels"]["job"] for t in targets} - metrics.TRANSIENT_JOBS
        )
        if down or missing or not targets:
            raise Failure(f"targets down: {down}; configured jobs without a target: {missing}")
        return targets

    return list(wait_for("every configured Prometheus job with its targets up", all_up, timeout, 3))


def catalogued_samples(jobs: set[str] | None = None) -> dict[str, str]:
    """Sample name -> job, of every metric the alert rules and the dashboard
    read (of the services scraped as ``jobs`` only, if given), but of
    transient targets, which have no series once their job has ended."""
    return {
        sample: service.job
        for service in metrics.SERVICES
        if (jobs is None or service.job in jobs) and not service.transient
        for metric in service.metrics
        for sample in metric.samples
    }


def series(url: str, name: str) -> int:
    return int(sum(query(url, f'count({{__name__="{name}"}})').values()))


def missing_series(url: str, samples: dict[str, str], timeout: float, interval: float) -> list[str]:
    """``job: sample`` of each sample with no series, after waiting up to
    ``timeout`` for all of them to have one."""
    with contextlib.suppress(Failure):
        wait_for(
            "every catalogued metric in Prometheus",
            lambda: all(series(url, n) for n in samples),
            timeout=timeout,
            interval=interval,
        )
    return sorted(f"{samples[n]}: {n}" for n in samples if not series(url, n))


def _named(alert: dict[str, Any], alertname: str, labels: dict[str, str]) -> bool:
    found = alert["labels"]
    return bool(found.get("alertname") == alertname and all(found.get(k) == v for k, v in labels.items()))


def alert_active(alertmanager: str, alertname: str, **labels: str) -> bool:
    """Whether Alertmanager's own API holds ``alertname`` with ``labels`` as
    active: delivered, not only firing in Prometheus."""
    alerts: list[dict[str, Any]] = http("GET", f"{alertmanager}/api/v2/alerts").json()
    return any(_named(a, alertname, labels) and a["status"]["state"] == "active" for a in alerts)


def alert_firing(prometheus: str, alertname: str, **labels: str) -> bool:
    """Whether Prometheus holds ``alertname`` with ``labels`` as firing."""
    alerts: list[dict[str, Any]] = http("GET", f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]
    return any(_named(a, alertname, labels) and a["state"] == "firing" for a in alerts)


def query(url: str, expr: str) -> dict[str, float]:
    """An instant query's result, by the values of its labels joined with ``/``."""
    encoded = urllib.parse.urlencode({"query": expr})
    result = http("GET", f"{url}/api/v1/query?{encoded}").json()["data"]["result"]
    return {"/".join(r["metric"].values()): float(r["value"][1]) for r in result}
