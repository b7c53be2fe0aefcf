"""Dev step 2: the jobs on the stack's Spark: the pipeline, the CSV group-by-count job, a job refused."""

from __future__ import annotations

import json
import time

from tools.e2e.stack import DevStack
from tools.e2e_common import history, lake
from tools.e2e_common.jobs_cli import MODEL, csv_groups_counted
from tools.e2e_common.pipeline import check_model, check_online_features, run_pipeline
from tools.e2e_common.report import check


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
