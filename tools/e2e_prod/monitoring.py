"""Prod step 6: Spark's metrics and a failed application's alert; Prometheus's
targets and catalogued series; a stopped workload's alert firing."""

from __future__ import annotations

import time

from dataplatform.monitoring import dashboard
from dataplatform.monitoring import metrics as m
from tools.e2e_common.history import APP_NAME
from tools.e2e_common.jobs_cli import submit
from tools.e2e_common.pipeline import PIPELINE_JOBS
from tools.e2e_common.prometheus import (
    alert_active,
    alert_firing,
    catalogued_samples,
    missing_series,
    query,
    targets_up,
)
from tools.e2e_common.report import check, wait_for
from tools.e2e_prod.stack import ProdStack

PIPELINE_APPS = {job: APP_NAME.format(job=job) for job in PIPELINE_JOBS}
# Back far enough for the pipeline's runs, whichever step this run began at.
SINCE = "3h"


def _seen(url: str, expr: str) -> dict[str, float]:
    """``expr``'s highest value over ``SINCE``, per application."""
    return query(url, f"max by (application_name) (max_over_time(({expr})[{SINCE}:5s]))")


def spark_metrics(prod: ProdStack) -> None:
    """What Prometheus saw of the pipeline's runs, through each driver while
    it ran: its executors, their task time and shuffle, in the dashboard's
    own queries; the operator's count of successes per job; then a train
    run failing on purpose fires SparkApplicationFailed, delivered."""
    executors = f'{m.SPARK_EXECUTOR_CORES}{{executor_id!="driver"}}'
    with prod.kube.forward(prod.namespace, "svc/prometheus", 9090) as port:
        url = f"http://127.0.0.1:{port}"
        seen = {
            "executors": _seen(url, f"count by (application_name) ({executors})"),
            "task seconds": _seen(url, f'{m.SPARK_EXECUTOR_TASK_SECONDS}{{executor_id!="driver"}}'),
        }
        for what, found in seen.items():
            missing = [app for app in PIPELINE_APPS.values() if found.get(app, 0) <= 0]
            check(not missing, f"no {what} of {missing} in Prometheus; it saw {found}")
        shuffled = _seen(url, f'{m.SPARK_EXECUTOR_SHUFFLE_WRITE}{{executor_id!="driver"}}')
        features = PIPELINE_APPS["features"]
        check(shuffled.get(features, 0) > 0, f"no shuffle of the features job: {shuffled}")
        figures = ", ".join(
            f"{job} {seen['executors'][app]:.0f} executors {seen['task seconds'][app]:.0f} task-s"
            for job, app in PIPELINE_APPS.items()
        )
        prod.report.ok(
            f"Prometheus scraped each pipeline job's executors through its driver: {figures}; "
            f"features wrote {shuffled[features] / 1e6:.1f} MB of shuffle"
        )
        # The dashboard's Spark panels have data over the runs.
        panels = [(t, e) for t, e in dashboard.expressions(dashboard.as_dict()) if t.endswith("(prod)")]
        check(len(panels) == 4, f"the dashboard's Spark panels changed: {panels}")
        empty = [
            title
            for title, expr in panels
            if not query(url, f"max_over_time(({expr.replace(dashboard.RATE, '1m')})[{SINCE}:5s]) > 0")
        ]
        check(not empty, f"dashboard panels with no data over the pipeline's runs: {empty}")
        # Over time and summed over controller pods: a restarted controller
        # (step 4 scales it to 0 and back) counts from 0 again.
        successes = query(
            url, f"sum by (dataplatform_job) (max_over_time({m.SPARK_APPLICATION_SUCCESSES}[{SINCE}]))"
        )
        missing = [job for job in PIPELINE_JOBS if successes.get(job, 0) < 1]
        check(not missing, f"the operator counted no success of {missing}: {successes}")
        prod.report.ok(f"the Spark panels have data; the operator counted successes per job {successes}")

    returncode, _ = submit(prod, "train", "--min-auc", "1.1")
    check(returncode != 0, f"train with --min-auc 1.1 succeeded:\n{prod.last_output[-1500:]}")
    check("below --min-auc" in prod.last_output, f"train failed otherwise:\n{prod.last_output[-1500:]}")
    alert_delivered(
        prod,
        "SparkApplicationFailed",
        time.monotonic(),
        "train failed",
        dataplatform_job="train",
        namespace=prod.jobs_namespace,
    )


def alert_delivered(prod: ProdStack, alertname: str, since: float, what: str, **labels: str) -> None:
    """``alertname`` with ``labels`` firing in Prometheus, then active in
    Alertmanager's own API, sent there by Prometheus through the
    NetworkPolicy between them; each timed from ``since`` (``what`` happened)."""
    name = f"{alertname}{{{', '.join(f'{k}={v}' for k, v in labels.items())}}}"
    with prod.kube.forward(prod.namespace, "svc/prometheus", 9090) as port:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{name} firing", lambda: alert_firing(url, alertname, **labels), timeout=180, interval=2)
        prod.time(f"{what} to {alertname} firing", time.monotonic() - since)
    with prod.kube.forward(prod.namespace, "svc/alertmanager", 9093) as port:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            f"{name} in Alertmanager", lambda: alert_active(url, alertname, **labels), timeout=120, interval=2
        )
        prod.time(f"{what} to {alertname} in Alertmanager's API", time.monotonic() - since)
    prod.report.ok(f"{name} active in Alertmanager's API")


def monitoring(prod: ProdStack) -> None:
    spark_metrics(prod)
    with prod.kube.forward(prod.namespace, "svc/prometheus", 9090) as port:
        url = f"http://127.0.0.1:{port}"
        targets = targets_up(url, timeout=120)
        jobs = {t["labels"]["job"] for t in targets}
        up = f"{len(targets)} targets up ({', '.join(sorted(jobs))})"
        prod.report.ok(f"Prometheus: every configured job scraped, {up}")
        samples = catalogued_samples(jobs)
        missing = missing_series(url, samples, timeout=60, interval=5)
        check(not missing, f"catalogued metrics with no series in Prometheus: {missing}")
        not_here = sorted({s.job for s in m.SERVICES} - m.TRANSIENT_JOBS - jobs)
        prod.report.ok(
            f"Prometheus has series of all {len(samples)} catalogued metrics of its jobs, the drivers' "
            "checked over the pipeline's runs above"
            + (f" (not in this tier: {', '.join(not_here)})" if not_here else "")
        )
    prod.kube.run("scale", "deployment/gateway", "-n", prod.namespace, "--replicas=0")
    alert_delivered(prod, "ServiceDown", time.monotonic(), "gateway scaled to 0", job="gateway")
    replicas = int(prod.config["gateway"].get("replicas", 2))
    prod.kube.run("scale", "deployment/gateway", "-n", prod.namespace, f"--replicas={replicas}")
    prod.kube.run("rollout", "status", "deployment/gateway", "-n", prod.namespace, "--timeout=180s")
