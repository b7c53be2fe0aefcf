"""Dev step 2: the jobs on the stack's Spark: the pipeline, the CSV group-by-count job, a job refused."""

from __future__ import annotations

import json
import subprocess
import time

from tools.e2e.stack import DevStack
from tools.e2e_common import history, lake
from tools.e2e_common.jobs_cli import MODEL, csv_groups_counted, jobs_submit_command
from tools.e2e_common.pipeline import check_model, check_online_features, run_pipeline
from tools.e2e_common.report import Failure, check
from tools.repo import ROOT


def pipeline(dev: DevStack) -> str:
    version = run_pipeline(dev.submit, dev.rows)
    check_online_features(dev.redis_client(), dev.report)
    bucket = dev.outputs["buckets"]["models"]
    s3 = dev.s3()
    check_model(s3, bucket, version)
    meta = json.loads(s3.get_object(Bucket=bucket, Key=f"{MODEL}/{version}/metadata.json")["Body"].read())
    dev.report.add("model AUC (held out)", str(meta.get("metrics", {}).get("auc")))
    dev.report.ok("features in Redis, model and LATEST in MinIO")
    lake.check_tables(dev.outputs["minio_endpoint"], dev.credentials(), dev.outputs["buckets"], dev.report)
    killed_mid_commit(dev)
    dev.submit("vacuum")
    check(
        dev.last_output.count(": vacuumed") == 3,
        f"vacuum did not go through the 3 tables:\n{dev.last_output[-1500:]}",
    )
    dev.report.ok("vacuum on the lake's 3 tables, as a user runs it once on dev")
    group_count_on_a_local_csv(dev)
    jobs_ended = time.monotonic()
    history.check_listed(
        dev.outputs["spark_history_url"],
        ["datagen", "features", "train", "vacuum", "event_counts"],
        dev.report,
        jobs_ended,
    )
    too_big_fails_fast(dev)
    return version


FEATURES = "features"


def killed_mid_commit(dev: DevStack, attempts: int = 3) -> None:
    """A features run whose driver is killed once its first data files are
    in MinIO, before its commit: delta-rs still reads the last version,
    whole, and Redis still serves the last online copy; the next run
    commits over the debris. A kill that lands after the commit (the
    window is a second or two) is tried again."""
    bucket = dev.outputs["buckets"]["lake"]
    s3 = dev.s3()

    def table() -> lake.DeltaTable:
        return lake.table(dev.outputs["minio_endpoint"], dev.credentials(), f"s3://{bucket}/{FEATURES}")

    drivers = f"{dev.outputs['docker']['prefix']}-job-{FEATURES}-"
    for attempt in range(1, attempts + 1):
        live = dev.redis_client().get("features:current")
        before = table()
        version, committed = before.version(), lake.committed_files(before, bucket)
        entities = lake.scalar(before, "SELECT count(DISTINCT entity_id) FROM t")
        process = subprocess.Popen(
            jobs_submit_command(dev.name, FEATURES),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            debris: set[str] = set()
            deadline = time.monotonic() + 300
            while not debris and process.poll() is None and time.monotonic() < deadline:
                debris = lake.data_files(s3, bucket, FEATURES) - committed
                time.sleep(0.05)
            for container in dev.engine.containers.list(filters={"name": drivers}):
                container.kill()
        finally:
            process.wait(timeout=120)
        after = table()
        if after.version() != version:
            dev.log(f"attempt {attempt}: the run committed v{after.version()} before the kill landed")
            continue
        check(bool(debris), "no data file of the killed run appeared in MinIO before it ended")
        rows = lake.scalar(after, "SELECT count(*) FROM t")
        check(
            lake.committed_files(after, bucket) == committed and rows == entities,
            f"after the kill delta-rs reads {rows} rows of v{after.version()} for {entities} entities",
        )
        check(dev.redis_client().get("features:current") == live, "the killed run's online copy went live")
        dev.submit(FEATURES)
        again = table()
        rows = lake.scalar(again, "SELECT count(*) FROM t")
        check(
            again.version() == version + 1 and rows == entities,
            f"the run after the kill: v{again.version()}, {rows} rows for {entities} entities",
        )
        dev.report.ok(
            f"features killed mid-commit ({len(debris)} data files in MinIO, attempt {attempt}): delta-rs "
            f"still reads v{version} whole, Redis the last online copy; the next run committed v{version + 1}"
        )
        return
    raise Failure(
        f"in {attempts} attempts no kill landed between a features run's first data file and its commit"
    )


def group_count_on_a_local_csv(dev: DevStack) -> None:
    """The CSV group-by-count job on a CSV of the user's own, given as a local path:
    uploaded to the raw bucket, counted on the cluster, exactly."""
    csv_groups_counted(dev, dev.submit)
    check("uploading" in dev.last_output, "the local CSV was not uploaded")
    dev.report.ok("event_counts on a local CSV: uploaded, 7 groups counted exactly")


def too_big_fails_fast(dev: DevStack) -> None:
    """An executor no worker can hold is refused before anything runs."""
    seconds = dev.submit("datagen", "--rows", "10", "--executor-memory", "64g", expect_failure=True)
    check("fit no worker" in dev.last_output, f"no reason given:\n{dev.last_output[-2000:]}")
    check(seconds < 60, f"refusing an impossible job took {seconds:.0f} s")
    dev.report.add("impossible job refused", f"{seconds:.1f} s")
