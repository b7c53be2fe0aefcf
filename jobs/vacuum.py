"""Remove the lake's files that no retained table version needs (Delta VACUUM).

Every commit of a Delta table leaves the files it replaced in place, so
older versions stay readable (``--as-of``) and a reader that started on one
of them finishes. VACUUM deletes the files that no version newer than the
retention period refers to. Delta refuses a retention shorter than the
table's ``delta.deletedFileRetentionDuration`` (7 days unless set), which
protects readers and writers still working on an older version; the stack
schedules this job with its configured retention.
"""

from __future__ import annotations

import argparse

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from jobs import lake
from jobs.config import Settings
from jobs.errors import JobError


def default_tables(settings: Settings) -> list[str]:
    """The tables the jobs write by default."""
    raw, lake_bucket = settings.buckets.raw, settings.buckets.lake
    return [
        settings.bucket_uri(raw, "events"),
        settings.bucket_uri(raw, "labels"),
        settings.bucket_uri(lake_bucket, "features"),
    ]


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    if args.retention_hours < 0:
        raise JobError("--retention-hours must not be negative")
    tables = [args.table] if args.table else default_tables(settings)
    # VACUUM lists a table's directories in one task per directory, up to
    # this many tasks; Spark's default of 10,000 made each listing 10,000
    # near-empty tasks (2.5 min for the features table on the dev stack).
    spark.conf.set(
        "spark.sql.sources.parallelPartitionDiscovery.parallelism",
        str(max(2, spark.sparkContext.defaultParallelism)),
    )
    for table in tables:
        if not lake.is_table(spark, table):
            print(f"{table}: not a Delta table yet, skipped")
            continue
        with lake.delta_errors(table):
            DeltaTable.forPath(spark, table).vacuum(float(args.retention_hours))
        print(f"{table}: vacuumed, keeping the files of the last {args.retention_hours} hours of versions")
