"""The CSV group-by-count job: rows per value of a column, for a CSV of any columns.

``spark.read.csv(path, header=True).groupBy(column).count()``, made safe:
the header names the columns, every value is read as the text it is (so
``007`` and ``7`` stay two groups and nothing is guessed), fields follow RFC
4180 (quoted fields may hold the delimiter, a newline or a doubled quote),
and a malformed file fails instead of turning into nulls. An unknown column
is reported with the columns the file has. The events pipeline keeps its
strict typed reader (``jobs.sources.read_table``); this job does not need one.
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import sources, storage
from jobs.config import Settings
from jobs.errors import JobError


def read_csv(spark: SparkSession, path: str, delimiter: str = ",") -> DataFrame:
    """A header CSV with every column as a string."""
    storage.require_input(spark, path)
    with sources.read_errors(path):
        frame = (
            spark.read.option("header", True)
            .option("inferSchema", False)
            .option("sep", delimiter)
            .option("quote", '"')
            .option("escape", '"')
            .option("multiLine", True)
            .option("mode", "FAILFAST")
            .csv(path)
        )
    if not frame.columns:
        raise JobError(f"{path} has no header row")
    return frame


def count_by(rows: DataFrame, column: str | None) -> tuple[str, str, DataFrame]:
    """Counts per value of ``column`` (default: the first column).

    Returns the column, the name of the count column (``count``, or ``rows``
    when the grouped column is itself called ``count``) and the counts.
    """
    chosen = column if column is not None else rows.columns[0]
    if chosen not in rows.columns:
        raise JobError(f"unknown column {chosen!r}; the file's columns are: {', '.join(rows.columns)}")
    total = "rows" if chosen == "count" else "count"
    return chosen, total, rows.groupBy(F.col(f"`{chosen}`")).agg(F.count(F.lit(1)).alias(total))


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    del settings  # paths are explicit; S3A is configured by the session
    rows = read_csv(spark, args.input, args.delimiter)
    column, total_column, counts = count_by(rows, args.column)
    with sources.read_errors(args.input):
        counts = counts.cache()
        total_groups = counts.count()

    wrote = ""
    if args.output:
        wrote = sources.write_output(
            counts.coalesce(1), args.output, args.format, overwrite=args.overwrite, description="event_counts"
        )
    ordered = counts.orderBy(F.col(total_column).desc(), F.col(f"`{column}`").asc_nulls_last())
    shown = ordered.take(args.show)
    counts.unpersist()
    print(f"{column}\t{total_column}")
    for row in shown:
        value = row[0]
        print(f"{'' if value is None else value}\t{row[1]}")
    if total_groups > len(shown):
        print(f"... {total_groups - len(shown)} more groups")
    if args.output:
        print(f"wrote {total_groups} groups to {wrote}")
