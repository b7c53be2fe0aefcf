"""Schemas shared by the jobs: raw events, labels, and the feature vector."""

from __future__ import annotations

from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# Event types the generator emits and the features job pivots on. The order is
# part of the model's input contract (feature_names in the registry metadata).
EVENT_TYPES: tuple[str, ...] = (
    "login",
    "page_view",
    "purchase",
    "support_ticket",
    "payment_failed",
)

EVENT_SCHEMA = StructType(
    [
        StructField("event_id", LongType(), nullable=False),
        StructField("entity_id", StringType(), nullable=False),
        StructField("event_type", StringType(), nullable=False),
        StructField("event_time", TimestampType(), nullable=False),
    ]
)

LABEL_SCHEMA = StructType(
    [
        StructField("entity_id", StringType(), nullable=False),
        StructField("label", IntegerType(), nullable=False),
    ]
)

# Trailing windows (name suffix, length in seconds) over which activity rates
# are computed, in events per day.
RATE_WINDOWS: tuple[tuple[str, int], ...] = (("1d", 86_400), ("7d", 7 * 86_400))


def feature_names() -> list[str]:
    """Feature columns in model input order."""
    names = ["events_total"]
    names += [f"count_{t}" for t in EVENT_TYPES]
    names += [f"share_{t}" for t in EVENT_TYPES]
    names += [f"rate_{suffix}" for suffix, _ in RATE_WINDOWS]
    names.append("recency_seconds")
    return names


def features_schema() -> StructType:
    """The features table: an entity's id, then its features in model input
    order; counts are integers, shares, rates and recency doubles."""
    fields = [StructField("entity_id", StringType(), nullable=False)]
    for name in feature_names():
        kind = LongType() if name == "events_total" or name.startswith("count_") else DoubleType()
        fields.append(StructField(name, kind, nullable=False))
    return StructType(fields)
