"""Smoke test of the Spark image: a distributed S3A write and read-back.

Submitted by images/smoke/run.sh against a standalone master; a standalone
application has no local fallback, so finishing means the worker's executors
did the work. Reads S3
settings from the jobs' environment contract (DP_S3_ENDPOINT and the
DP_S3_*_FILE credentials) and fails unless the data survives the round trip.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def secret(var: str) -> str:
    return Path(os.environ[var]).read_text().removesuffix("\n")


def main(bucket: str) -> int:
    spark = (
        SparkSession.builder.appName("image-smoke-s3a")
        .config("spark.hadoop.fs.s3a.endpoint", os.environ["DP_S3_ENDPOINT"])
        .config("spark.hadoop.fs.s3a.access.key", secret("DP_S3_ACCESS_KEY_FILE"))
        .config("spark.hadoop.fs.s3a.secret.key", secret("DP_S3_SECRET_KEY_FILE"))
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
        .getOrCreate()
    )
    path = f"s3a://{bucket}/smoke/{uuid.uuid4().hex}"
    rows = 100_000
    frame = spark.range(rows).withColumn("bucket", F.col("id") % 7)
    frame.repartition(4).write.mode("error").parquet(path)

    back = spark.read.parquet(path)
    count = back.count()
    summed = back.agg(F.sum("id")).first()
    total = summed[0] if summed is not None else None
    groups = back.groupBy("bucket").count().count()
    spark.stop()

    expected_total = rows * (rows - 1) // 2
    print(f"path={path} count={count} sum={total} groups={groups}")
    if (count, total, groups) != (rows, expected_total, 7):
        print("smoke test FAILED", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "lake"))
