"""Deterministic synthetic events and labels.

Every value is a hash of (seed, purpose, row id or entity index), computed on
the executors from ``spark.range``: output is identical for a given seed
whatever the number of partitions or executors, and the driver holds nothing
but the plan, so tens of millions of rows need no driver memory.

The hidden structure a model can learn: each entity has a propensity ``p`` in
[0, 1). It shifts the entity's event-type mix from a healthy profile towards a
churning one (fewer purchases, more support tickets and failed payments),
concentrates its events earlier in the time span (lower recent activity), and
sets the probability of its label: ``P(label = 1) = sigmoid(12 (p - 0.5))``.

Events and labels are Delta tables by default (``jobs.lake``): Parquet files
under a commit log, so a rerun with ``--overwrite`` replaces the rows in one
commit and the rows it replaced stay readable by version. ``--format
parquet`` writes plain Parquet, and ``--format csv`` (header, UTC
``yyyy-MM-dd HH:mm:ss`` timestamps) input for ``event_counts``.
"""

from __future__ import annotations

import argparse
import math
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import sources, storage
from jobs.config import Settings
from jobs.definitions import ROWS_PER_PARTITION, keywords
from jobs.errors import JobError
from jobs.schema import EVENT_TYPES

# Event-type probabilities of an entity with propensity 0 and 1; an entity's
# mix is the linear interpolation at its propensity. Order follows EVENT_TYPES.
HEALTHY_MIX = (0.25, 0.45, 0.22, 0.05, 0.03)
CHURNING_MIX = (0.15, 0.40, 0.05, 0.25, 0.15)
LABEL_STEEPNESS = 12.0

_TWO_POW_53 = 1 << 53


def unit_uniform(seed: int, purpose: str, key: Column) -> Column:
    """A uniform double in [0, 1) that depends only on (seed, purpose, key)."""
    hashed = F.xxhash64(F.lit(seed), F.lit(purpose), key)
    return F.pmod(hashed, F.lit(_TWO_POW_53)).cast("double") / float(_TWO_POW_53)


def entity_id(index: Column) -> Column:
    return F.format_string("u%08d", index)


def propensity(seed: int, index: Column) -> Column:
    return unit_uniform(seed, "propensity", index)


def label_probability(p: Column) -> Column:
    return 1.0 / (1.0 + F.exp(-LABEL_STEEPNESS * (p - 0.5)))


def generate_events(
    spark: SparkSession,
    *,
    rows: int,
    entities: int,
    start: datetime,
    days: float,
    seed: int,
    partitions: int | None = None,
) -> DataFrame:
    if rows <= 0 or entities <= 0 or days <= 0:
        raise JobError("rows, entities and days must be positive")
    if partitions is None:
        partitions = max(spark.sparkContext.defaultParallelism, math.ceil(rows / ROWS_PER_PARTITION))
    span_seconds = int(days * 86_400)
    row_id = F.col("id")
    index = F.pmod(F.xxhash64(F.lit(seed), F.lit("entity"), row_id), F.lit(entities))
    p = F.col("_p")

    u_type = unit_uniform(seed, "type", row_id)
    event_type = None
    cumulative: Column | float = 0.0
    for name, healthy, churning in zip(EVENT_TYPES[:-1], HEALTHY_MIX, CHURNING_MIX, strict=False):
        cumulative = cumulative + (1.0 - p) * healthy + p * churning
        event_type = (
            F.when(u_type < cumulative, name)
            if event_type is None
            else event_type.when(u_type < cumulative, name)
        )
    if event_type is None:
        raise JobError("at least two event types are needed")
    event_type = event_type.otherwise(EVENT_TYPES[-1])

    # u ** (1 + 2p) pulls a churning entity's events towards the span's start.
    offset = F.floor(F.pow(unit_uniform(seed, "time", row_id), 1.0 + 2.0 * p) * span_seconds)
    start_epoch = int(start.timestamp())

    return (
        spark.range(0, rows, 1, partitions)
        .withColumn("_index", index)
        .withColumn("_p", propensity(seed, F.col("_index")))
        .select(
            row_id.alias("event_id"),
            entity_id(F.col("_index")).alias("entity_id"),
            event_type.alias("event_type"),
            F.timestamp_seconds(F.lit(start_epoch) + offset).alias("event_time"),
        )
    )


def generate_labels(
    spark: SparkSession, *, entities: int, seed: int, partitions: int | None = None
) -> DataFrame:
    index = F.col("id")
    p = propensity(seed, index)
    label = (unit_uniform(seed, "label", index) < label_probability(p)).cast("int")
    return spark.range(0, entities, 1, partitions or spark.sparkContext.defaultParallelism).select(
        entity_id(index).alias("entity_id"), label.alias("label")
    )


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    events_path = args.output or settings.bucket_uri(settings.buckets.raw, "events")
    labels_path = args.labels_output or settings.bucket_uri(settings.buckets.raw, "labels")
    # Both outputs are checked before either is written, so a refusal
    # leaves no new events behind labels that were never written.
    for path in (events_path, labels_path):
        if storage.exists(spark, path) and not args.overwrite:
            raise JobError(f"output {path} already exists (pass --overwrite to replace it)")
    events = generate_events(
        spark, **keywords(args, "rows", "entities", "start", "days", "seed", "partitions")
    )
    labels = generate_labels(spark, entities=args.entities, seed=args.seed)
    wrote_events = sources.write_output(
        events, events_path, args.format, overwrite=args.overwrite, description="datagen"
    )
    wrote_labels = sources.write_output(
        labels, labels_path, args.format, overwrite=args.overwrite, description="datagen"
    )
    print(
        f"wrote {args.rows:,} events for {args.entities:,} entities to {wrote_events} "
        f"and labels to {wrote_labels}"
    )
