"""Count raw events per value of a column: the platform's smoke-test job.

Reads a CSV with a header in the raw event schema (parsed in FAILFAST mode, so
a file that does not match fails instead of producing nulls), counts rows per
value of ``--column``, writes the counts (Parquet or CSV) and prints them.
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import storage
from jobs.config import Settings
from jobs.errors import JobError
from jobs.schema import EVENT_SCHEMA
from jobs.sources import input_errors, read_table


def count_by(events: DataFrame, column: str) -> DataFrame:
    if column not in events.columns:
        raise JobError(f"unknown column {column!r}; the events have {', '.join(events.columns)}")
    return events.groupBy(column).agg(F.count(F.lit(1)).alias("count"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="CSV file or directory (path or s3a:// URI)")
    parser.add_argument("--column", default="event_type", help="column to group by (default event_type)")
    parser.add_argument("--output", required=True, help="output directory (path or s3a:// URI)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--show", type=int, default=100, help="groups to print, largest first")


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    del settings  # paths are explicit; S3A is configured by the session
    events = read_table(spark, args.input, "csv", EVENT_SCHEMA)
    counts = count_by(events, args.column).cache()

    def write(path: str) -> None:
        writer = counts.coalesce(1).write.mode("errorifexists")
        if args.format == "csv":
            writer.option("header", True).csv(path)
        else:
            writer.parquet(path)

    with input_errors(args.input, EVENT_SCHEMA):
        storage.publish_directory(spark, args.output, write, overwrite=args.overwrite)
    rows = counts.orderBy(F.col("count").desc(), F.col(args.column).asc_nulls_last()).take(args.show)
    total_groups = counts.count()
    counts.unpersist()
    print(f"{args.column}\tcount")
    for row in rows:
        print(f"{row[args.column]}\t{row['count']}")
    if total_groups > len(rows):
        print(f"... {total_groups - len(rows)} more groups in {args.output}")
    print(f"wrote {total_groups} groups to {args.output} ({args.format})")
