"""Raw events to per-entity features: a Delta table in the lake, plus Redis.

The features table (``--output``, default ``s3a://<lake>/features``) gets
one commit per run, holding every entity's features as of the run's
reference time. Readers see the previous version or the new one, never a
mix, and earlier versions stay readable by number or time (``train
--as-of``) until the ``vacuum`` job removes their files. Rows are
hash-partitioned by entity and sorted by entity id, so files are of even
size and their min/max statistics let a point lookup skip most of them.

The online copy in Redis (``jobs.online``) is a version of its own, named
after the run (``--version``): it is written in full before the lake commit
and made live right after it, in one step, so a run that fails at any point
leaves the features that were serving, online and in the lake, as they were.

Features are as of a reference time (argument, default: the latest event):
events after it are ignored, so re-running on the same inputs (the same
events version, ``--as-of``) and reference reproduces the same values.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import lake, online
from jobs.config import Settings, check_redis
from jobs.errors import JobError
from jobs.schema import EVENT_SCHEMA, EVENT_TYPES, RATE_WINDOWS, feature_names
from jobs.sources import input_errors, read_table
from jobs.timeutil import iso_utc, version_now

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def compute_features(events: DataFrame, reference: datetime) -> DataFrame:
    """Per-entity features as of ``reference``, in one aggregation pass."""
    ref_us = epoch_micros(reference)
    micros = F.unix_micros(F.col("event_time"))

    def count_where(condition: Column) -> Column:
        return F.count(F.when(condition, 1))

    aggregates = [F.count(F.lit(1)).alias("events_total")]
    aggregates += [count_where(F.col("event_type") == t).alias(f"count_{t}") for t in EVENT_TYPES]
    aggregates += [
        count_where(micros > ref_us - seconds * 1_000_000).alias(f"_window_{suffix}")
        for suffix, seconds in RATE_WINDOWS
    ]
    aggregates.append(F.max(micros).alias("_last_us"))

    grouped = events.where(micros <= ref_us).groupBy("entity_id").agg(*aggregates)
    total = F.col("events_total").cast("double")
    derived = {f"share_{t}": F.col(f"count_{t}") / total for t in EVENT_TYPES}
    derived |= {
        f"rate_{suffix}": F.col(f"_window_{suffix}") / (seconds / 86_400.0)
        for suffix, seconds in RATE_WINDOWS
    }
    derived["recency_seconds"] = (F.lit(ref_us) - F.col("_last_us")) / 1_000_000.0
    return grouped.withColumns(derived).select("entity_id", *feature_names())


def latest_event_time(events: DataFrame) -> datetime:
    # Aggregating integer microseconds avoids the driver's local-zone
    # conversion that collecting a timestamp would apply.
    row = events.agg(F.max(F.unix_micros(F.col("event_time")))).first()
    if row is None or row[0] is None:
        raise JobError("the input holds no events")
    return _EPOCH + timedelta(microseconds=int(row[0]))


def laid_out(features: DataFrame) -> DataFrame:
    """The rows as the table stores them: hash-partitioned by entity, sorted
    by entity id within each partition."""
    return features.repartition("entity_id").sortWithinPartitions("entity_id")


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    input_path = args.input or settings.bucket_uri(settings.buckets.raw, "events")
    table = args.output or settings.bucket_uri(settings.buckets.lake, "features")
    target: online.OnlineTarget | None = None
    if args.online:
        redis_settings = settings.require_redis()
        check_redis(redis_settings)
        target = online.OnlineTarget.from_settings(redis_settings, args.ttl_seconds, args.batch_commands)

    def events(complete_rows: bool = True) -> DataFrame:
        return read_table(
            spark, input_path, args.input_format, EVENT_SCHEMA, complete_rows=complete_rows, as_of=args.as_of
        )

    source = events()
    with input_errors(input_path, EVENT_SCHEMA):
        # Only event_time is scanned here; the full pass below validates rows.
        reference = args.reference_time or latest_event_time(events(complete_rows=False))
    version = args.version or version_now()
    if target is not None and online.live_version(target) == version:
        raise JobError(f"version {version} is the one serving in Redis; name this run another --version")

    names = feature_names()
    features = laid_out(compute_features(source, reference)).persist(StorageLevel.MEMORY_AND_DISK)
    # Checked before anything is written: a table of other columns is refused.
    lake.check_writable(spark, table, features.schema, overwrite=True)
    written: int | None = None
    try:
        with input_errors(input_path, EVENT_SCHEMA):
            if target is not None:
                written = online.write_features(features, target, names, version)
            committed = lake.write(
                features, table, overwrite=True, description=f"run {version}, as of {iso_utc(reference)}"
            )
    except BaseException:
        if target is not None:
            online.discard(target, version)
        raise
    finally:
        features.unpersist()
    # The lake's commit first, then the online pointer: both now name complete data.
    if target is not None:
        replaced, removed = online.switch(target, version)
        print(f"online: version {version} live (was {replaced or 'none'}); removed {removed or 'none'}")

    read_from = f" ({args.as_of})" if args.as_of else ""
    print(f"features as of {iso_utc(reference)} from {input_path}{read_from}")
    print(f"committed to {table} as version {committed} (run {version})")
    if written is not None:
        print(f"online: {written:,} entities written to Redis (TTL {args.ttl_seconds}s)")
