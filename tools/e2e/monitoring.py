"""Dev steps 4 and 7: Prometheus's targets and series, Grafana, and a stopped gateway's alert."""

from __future__ import annotations

import base64
import time

from pulumi.automation import OpType

from dataplatform.monitoring import metrics
from tools.e2e.stack import DevStack
from tools.e2e_common.prometheus import (
    alert_active,
    catalogued_samples,
    configured_jobs,
    missing_series,
    targets_up,
)
from tools.e2e_common.report import check, wait_for
from tools.e2e_common.web import http


def monitoring(dev: DevStack) -> None:
    url = dev.outputs["prometheus_url"].rstrip("/")
    targets = targets_up(url, timeout=90)
    jobs = sorted({t["labels"]["job"] for t in targets})
    dev.report.ok(f"Prometheus: every configured job scraped, {len(targets)} targets up ({', '.join(jobs)})")

    # Every metric the rules and the dashboard read of the jobs this tier
    # scrapes has series here (Spark's drivers and operator are prod's).
    scraped = configured_jobs(url)
    samples = catalogued_samples(scraped)
    missing = missing_series(url, samples, timeout=30, interval=3)
    check(not missing, f"metrics the alerts and dashboard read but Prometheus has no series of: {missing}")
    not_here = sorted({s.job for s in metrics.SERVICES} - scraped)
    dev.report.ok(
        f"Prometheus has series of all {len(samples)} catalogued metrics of its jobs (not in this tier: "
        f"{', '.join(not_here)})"
    )
    if "grafana_url" in dev.outputs:
        token = base64.b64encode(f"admin:{dev.outputs['grafana_admin_password']}".encode()).decode()
        found = http(
            "GET",
            f"{dev.outputs['grafana_url']}/api/search",
            headers={"Authorization": f"Basic {token}"},
        )
        check(found.status == 200 and found.json(), f"Grafana dashboards: {found.status}")
        dev.report.ok("Grafana lists the provisioned dashboard")


def alerting(dev: DevStack) -> None:
    """A stopped service's alert reaches Alertmanager; refresh and up
    then notice the stopped container and bring it back."""
    url = dev.outputs["alertmanager_url"].rstrip("/")
    gateway = dev.container("gateway")
    gateway.stop(timeout=10)
    start = time.monotonic()

    wait_for(
        "ServiceDown for the gateway in Alertmanager",
        lambda: alert_active(url, "ServiceDown", job="gateway"),
        timeout=120,
        interval=1,
    )
    dev.report.add("gateway stopped to its alert in Alertmanager", f"{time.monotonic() - start:.1f} s")
    dev.report.ok("ServiceDown{job=gateway} active in Alertmanager's API")

    assert dev.stack is not None
    dev.stack.refresh(on_output=dev.out, color="never")
    result, seconds = dev.up("after the gateway stopped")
    changes = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
    # Refresh also reads each image by its tag: containers of a tag
    # rebuilt meanwhile (by another build on this engine) are replaced.
    check(
        changes.get(OpType.CREATE) == 1 and set(changes) <= {OpType.CREATE, OpType.REPLACE},
        f"up after refresh: {changes}, expected the gateway created",
    )
    check(dev.health(dev.container("gateway")) == "healthy", "the recreated gateway is not healthy")
    dev.report.add("refresh + up recreating the stopped gateway", f"{seconds:.1f} s (up)")
