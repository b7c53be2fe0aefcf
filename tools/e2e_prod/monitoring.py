"""Prod step 6: Prometheus's targets and catalogued series, and a stopped workload's alert firing."""

from __future__ import annotations

import time
from typing import Any

from dataplatform.monitoring import metrics
from tools.e2e_common.prometheus import alert_active, catalogued_samples, missing_series, targets_up
from tools.e2e_common.report import check, wait_for
from tools.e2e_common.web import http
from tools.e2e_prod.stack import ProdStack


def monitoring(prod: ProdStack) -> None:
    with prod.kube.forward(prod.namespace, "svc/prometheus", 9090) as port:
        url = f"http://127.0.0.1:{port}"
        targets = targets_up(url, timeout=120)
        jobs = {t["labels"]["job"] for t in targets}
        up = f"{len(targets)} targets up ({', '.join(sorted(jobs))})"
        prod.report.ok(f"Prometheus: every configured job scraped, {up}")
        samples = catalogued_samples(jobs)
        missing = missing_series(url, samples, timeout=60, interval=5)
        check(not missing, f"catalogued metrics with no series in Prometheus: {missing}")
        not_here = sorted({s.job for s in metrics.SERVICES} - jobs)
        prod.report.ok(
            f"Prometheus has series of all {len(samples)} catalogued metrics of its jobs"
            + (f" (not in this tier: {', '.join(not_here)})" if not_here else "")
        )
        prod.kube.run("scale", "deployment/gateway", "-n", prod.namespace, "--replicas=0")
        start = time.monotonic()

        def firing() -> bool:
            alerts: list[dict[str, Any]] = http("GET", f"{url}/api/v1/alerts").json()["data"]["alerts"]
            return any(
                a["labels"].get("alertname") == "ServiceDown"
                and a["labels"].get("job") == "gateway"
                and a["state"] == "firing"
                for a in alerts
            )

        wait_for("ServiceDown{job=gateway} firing", firing, timeout=180, interval=2)
        prod.time("gateway scaled to 0 to ServiceDown firing", time.monotonic() - start)
    # Delivered: Alertmanager's own API has it, sent there by Prometheus
    # through the NetworkPolicy between them.
    with prod.kube.forward(prod.namespace, "svc/alertmanager", 9093) as port:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            "ServiceDown{job=gateway} in Alertmanager",
            lambda: alert_active(url, "ServiceDown", "gateway"),
            timeout=120,
            interval=2,
        )
        prod.time("gateway scaled to 0 to ServiceDown in Alertmanager's API", time.monotonic() - start)
        prod.report.ok("ServiceDown{job=gateway} active in Alertmanager's API")
    replicas = int(prod.config["gateway"].get("replicas", 2))
    prod.kube.run("scale", "deployment/gateway", "-n", prod.namespace, f"--replicas={replicas}")
    prod.kube.run("rollout", "status", "deployment/gateway", "-n", prod.namespace, "--timeout=180s")
