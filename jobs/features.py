"""Raw events to per-entity features: Parquet snapshot in the lake + Redis.

Layout in the lake, under ``--output-root`` (default ``s3a://<lake>/features``)::

    snapshot=<YYYYMMDDTHHMMSSZ>/part-*.parquet   one complete snapshot per run
    LATEST                                       name of the live snapshot

Partitioning by snapshot makes every training run reproducible (it names the
snapshot it read) and makes publication atomic on any store: a run writes a
directory nobody reads yet, then replaces the small ``LATEST`` object, which
object stores swap in one PUT. A failed run deletes its directory and leaves
``LATEST`` alone. Within a snapshot, rows are hash-partitioned by entity and
sorted by entity id, so files are of even size and their min/max statistics
let a point lookup skip most of them. Old snapshots beyond ``--keep`` are
removed after publication.

The online copy in Redis (``jobs.online``) is a version of its own, named
like the snapshot: it is written in full before ``LATEST`` is replaced and
made live right after, in one step, so a run that fails at any point leaves
the features that were serving, online and in the lake, as they were.

Features are as of a reference time (argument, default: the latest event):
events after it are ignored, so re-running on the same inputs and reference
reproduces the same values.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import online, storage
from jobs.config import Settings, check_redis
from jobs.errors import JobError
from jobs.schema import EVENT_SCHEMA, EVENT_TYPES, RATE_WINDOWS, feature_names
from jobs.sources import input_errors, read_table
from jobs.timeutil import iso_utc, version_now

LATEST = "LATEST"
SNAPSHOT_PREFIX = "snapshot="
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


def resolve_snapshot(spark: SparkSession, root: str, snapshot: str | None = None) -> str:
    """Path of a named snapshot, or of the one ``LATEST`` points to."""
    if snapshot is None:
        pointer = storage.read_text(spark, storage.join(root, LATEST))
        if pointer is None:
            raise JobError(f"no features published under {root} ({LATEST} is missing)")
        snapshot = pointer.strip()
    path = storage.join(root, SNAPSHOT_PREFIX + snapshot)
    storage.require_input(spark, path, "features snapshot")
    return path


def prune_snapshots(spark: SparkSession, root: str, keep: int, live: str) -> list[str]:
    snapshots = [n for n in storage.child_names(spark, root) if n.startswith(SNAPSHOT_PREFIX)]
    doomed = [n for n in snapshots[:-keep] if n != SNAPSHOT_PREFIX + live] if keep > 0 else []
    for name in doomed:
        storage.delete(spark, storage.join(root, name))
    return doomed


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    input_path = args.input or settings.bucket_uri(settings.buckets.raw, "events")
    root = args.output_root or settings.bucket_uri(settings.buckets.lake, "features")
    target: online.OnlineTarget | None = None
    if args.online:
        redis_settings = settings.require_redis()
        check_redis(redis_settings)
        target = online.OnlineTarget.from_settings(redis_settings, args.ttl_seconds, args.batch_commands)

    events = read_table(spark, input_path, args.input_format, EVENT_SCHEMA)
    with input_errors(input_path, EVENT_SCHEMA):
        # Only event_time is scanned here; the full pass below validates rows.
        reference = args.reference_time or latest_event_time(
            read_table(spark, input_path, args.input_format, EVENT_SCHEMA, complete_rows=False)
        )
    version = args.version or version_now()
    snapshot = storage.join(root, SNAPSHOT_PREFIX + version)
    if storage.exists(spark, snapshot):
        raise JobError(f"snapshot {snapshot} already exists")

    names = feature_names()
    features = compute_features(events, reference)
    written: int | None = None
    try:
        with input_errors(input_path, EVENT_SCHEMA):
            (
                features.repartition("entity_id")
                .sortWithinPartitions("entity_id")
                .write.mode("errorifexists")
                .parquet(snapshot)
            )
        if target is not None:
            written = online.write_features(spark.read.parquet(snapshot), target, names, version)
        # Lake first, then the online pointer: both now name complete data.
        storage.write_bytes(spark, storage.join(root, LATEST), version.encode(), overwrite=True)
    except BaseException:
        if target is not None:
            online.discard(target, version)
        storage.delete(spark, snapshot)
        raise
    if target is not None:
        replaced, removed = online.switch(target, version)
        print(f"online: version {version} live (was {replaced or 'none'}); removed {removed or 'none'}")
    pruned = prune_snapshots(spark, root, args.keep, version)

    print(f"features as of {iso_utc(reference)} published to {snapshot}")
    if written is not None:
        print(f"online: {written:,} entities written to Redis (TTL {args.ttl_seconds}s)")
    if pruned:
        print(f"removed old snapshots: {', '.join(pruned)}")
