"""Prod step 4: the jobs as SparkApplications (executors counted), the CSV group count, a scheduled run."""

from __future__ import annotations

import contextlib
import threading
import time

from dataplatform.services.spark.shared import STREAM_NAME
from tools.e2e_common import history, lake
from tools.e2e_common.jobs_cli import check_succeeded, csv_groups_counted, submit
from tools.e2e_common.pipeline import check_model, check_online_features, run_pipeline
from tools.e2e_common.report import check, wait_for
from tools.e2e_prod.kube import Kube
from tools.e2e_prod.stack import ProdStack


class ExecutorWatch:
    """Counts a running job's executor pods every two seconds."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        # Every change of the count, so its peak is among them.
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(2):
            with contextlib.suppress(Exception):
                # The streaming job's executors run throughout; not this job's.
                selector = f"spark-role=executor,sparkoperator.k8s.io/app-name!={STREAM_NAME}"
                pods = self.kube.json("get", "pods", "-n", self.namespace, "-l", selector)["items"]
                n = sum(1 for p in pods if p["status"].get("phase") in ("Pending", "Running"))
                if not self.counts or self.counts[-1] != n:
                    self.counts.append(n)


def submit_watched(prod: ProdStack, job: str, *args: str) -> float:
    """``python -m jobs submit`` with the stack's own sizes, its executor pods counted meanwhile."""
    watcher = ExecutorWatch(prod.kube, prod.jobs_namespace)
    watcher.start()
    returncode, seconds = submit(prod, job, *args)
    watcher.stop()
    check_succeeded(prod, job, returncode)
    prod.time(f"job {job}", seconds)
    prod.report.add(
        f"job {job}: executors seen",
        f"{' -> '.join(map(str, watcher.counts)) or 'none'} (max {max(watcher.counts, default=0)})",
    )
    prod.executor_counts[job] = watcher.counts
    return seconds


def pipeline(prod: ProdStack) -> str:
    version = run_pipeline(lambda job, *args: submit_watched(prod, job, *args), prod.rows)
    spark = prod.config["spark"]
    low, high = int(spark.get("minExecutors", 1)), int(spark["maxExecutors"])
    peaks = {job: max(counts, default=0) for job, counts in prod.executor_counts.items()}
    check(all(p <= high for p in peaks.values()), f"more executors than maxExecutors {high}: {peaks}")
    check(any(p >= max(low, 1) for p in peaks.values()), f"no executor pod seen: {peaks}")
    # Dynamic allocation: none before the driver asks, up to maxExecutors
    # while tasks queue, none once the application ends.
    unscaled = {
        job: counts
        for job, counts in prod.executor_counts.items()
        if not counts or counts[0] != 0 or counts[-1] != 0 or peaks[job] != high
    }
    check(not unscaled, f"executors did not go 0 -> ... -> {high} -> 0: {unscaled}")
    prod.report.ok(f"executors scaled 0 -> {high} -> 0 in each job, within {low}..{high}; peaks {peaks}")
    with prod.redis_client() as client:
        check_online_features(client, prod.report)
    with prod.s3() as s3:
        check_model(s3, prod.outputs["buckets"]["models"], version)
    prod.report.ok("features in Redis, model and LATEST in MinIO")
    with prod.kube.forward(prod.namespace, "svc/minio", 9000) as port:
        endpoint = f"http://127.0.0.1:{port}"
        lake.check_tables(endpoint, prod.credentials(), prod.outputs["buckets"], prod.report)
    return version


def jobs_that_cannot_run(prod: ProdStack) -> None:
    """Two ways a job cannot run, each told by ``python -m jobs submit``
    with its reason once ``--schedule-timeout`` has passed, not left
    waiting: a driver no node can hold, and an application the operator
    never takes up (its controller scaled to 0)."""
    application = "dp-datagen"

    def remove() -> None:
        prod.kube.run(
            "delete",
            "sparkapplication",
            application,
            "-n",
            prod.jobs_namespace,
            "--ignore-not-found",
            "--wait=true",
        )

    def refused(reason: str, *flags: str) -> float:
        try:
            returncode, seconds = submit(prod, "datagen", "--schedule-timeout", "20", *flags)
        finally:
            remove()
        check(returncode != 0, f"a job that cannot run was reported as run:\n{prod.last_output[-1500:]}")
        check(reason in prod.last_output, f"submit did not say {reason!r}:\n{prod.last_output[-1500:]}")
        return seconds

    seconds = refused("the driver pod cannot be scheduled", "--driver-memory", "64g")
    prod.report.ok(
        f"a driver no node can hold: submit failed in {seconds:.0f} s, the driver pod cannot be scheduled"
    )
    listed = prod.kube.run("get", "deployments", "-n", prod.operator_namespace, "-o", "name").split()
    [controller] = [name for name in listed if name.endswith("-controller")]
    prod.kube.run("scale", controller, "-n", prod.operator_namespace, "--replicas=0")
    try:
        seconds = refused("the Spark Operator has not taken the application up")
    finally:
        prod.kube.run("scale", controller, "-n", prod.operator_namespace, "--replicas=1")
        prod.kube.run("rollout", "status", controller, "-n", prod.operator_namespace, "--timeout=180s")
    prod.report.ok(
        f"the operator stopped: submit failed in {seconds:.0f} s, the application was never taken up"
    )


def group_count_job(prod: ProdStack) -> None:
    csv_groups_counted(prod, lambda job, *args: submit_watched(prod, job, *args))
    uploaded = [line for line in prod.last_output.splitlines() if "s3a://" in line and "uploads/" in line]
    check(bool(uploaded), "the CSV was not put into MinIO")
    prod.csv_uri = uploaded[0][uploaded[0].index("s3a://") :].split()[0].rstrip(".,")
    prod.report.ok(f"the CSV group-by-count job on a CSV in MinIO ({prod.csv_uri}): 7 groups counted exactly")


def scheduled(prod: ProdStack) -> None:
    apps = prod.kube.json("get", "scheduledsparkapplications", "-n", prod.jobs_namespace)["items"]
    names = {a["metadata"]["name"] for a in apps}
    declared = {j["name"] for j in prod.config.get("sparkJobs", []) if j.get("schedule")}
    check(declared <= names, f"scheduled applications missing: {declared - names}")
    wait_for(
        "the operator to schedule the stack's ScheduledSparkApplications",
        lambda: all(
            (a.get("status") or {}).get("scheduleState") == "Scheduled"
            for a in prod.kube.json("get", "scheduledsparkapplications", "-n", prod.jobs_namespace)["items"]
        ),
        timeout=60,
    )
    prod.report.ok(f"the operator accepted {len(names)} ScheduledSparkApplications: {sorted(names)}")
    # One more, due within a minute, on the CSV just counted.
    soon = {
        "name": "counts-soon",
        "job": "event_counts",
        "schedule": "@every 1m",
        "args": [prod.csv_uri, "--column", "column1"],
    }
    prod.config["sparkJobs"] = [*prod.config.get("sparkJobs", []), soon]
    assert prod.stack is not None
    prod.stack.set_all_config(prod.engine_config())
    prod.up("a job scheduled every minute")
    start = time.monotonic()

    def ended() -> tuple[str, str] | None:
        """The first run that ended and how: a failed run stops the wait, so
        a later success cannot hide it. The operator lists ended runs in the
        status; the latest run's own state is read too, as it may not be
        listed yet."""
        status = (
            prod.kube.json("get", "scheduledsparkapplication", "counts-soon", "-n", prod.jobs_namespace).get(
                "status"
            )
            or {}
        )
        failed = status.get("pastFailedRunNames") or []
        if failed:
            return failed[0], "FAILED"
        last = status.get("lastRunName")
        if last:
            app = prod.kube.json("get", "sparkapplication", last, "-n", prod.jobs_namespace)
            state = ((app.get("status") or {}).get("applicationState") or {}).get("state")
            if state in ("COMPLETED", "FAILED"):
                return last, str(state)
        succeeded = status.get("pastSuccessfulRunNames") or []
        return (succeeded[0], "COMPLETED") if succeeded else None

    run, state = wait_for("the scheduled application's first run to end", ended, timeout=420, interval=5)
    check(state == "COMPLETED", f"the scheduled run {run} failed")
    prod.time(f"scheduled application: created to its run {run} COMPLETED", time.monotonic() - start)
    # Jobs from the CLI and a run of the operator's own schedule, finished.
    with prod.kube.forward(prod.namespace, "svc/spark-history", 18080) as port:
        # event_counts twice: the CSV job from the CLI, and this scheduled run.
        jobs = ["datagen", "features", "train", "event_counts", "event_counts"]
        history.check_listed(f"http://127.0.0.1:{port}", jobs, prod.report)
    prod.config["sparkJobs"] = [j for j in prod.config["sparkJobs"] if j["name"] != "counts-soon"]
    prod.stack.set_all_config(prod.engine_config())
    prod.up("the every-minute job removed")
