"""Online copy of the features in Redis (contract "Online features").

Each entity is one hash, ``features:<entity_id>``, with one field per feature
holding a decimal string, and a TTL. Executors write their own partitions over
pipelined MULTI/EXEC batches: per entity DEL + HSET + EXPIRE, so a re-run
replaces the whole hash (no stale fields survive a change of feature set) and a
reader never observes a hash between its DEL and its HSET.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import redis
from pyspark import Accumulator
from pyspark.sql import DataFrame, Row
from redis.typing import EncodableT, FieldT

from jobs.config import CONNECT_TIMEOUT_SECONDS, RedisSettings

KEY_PREFIX = "features:"
COMMANDS_PER_ENTITY = 3


@dataclass(frozen=True)
class OnlineTarget:
    """Everything an executor needs; pickled into the task closure."""

    host: str
    port: int
    password: str | None = field(repr=False)
    db: int
    ttl_seconds: int
    batch_commands: int = 500
    username: str | None = None

    @classmethod
    def from_settings(
        cls, settings: RedisSettings, ttl_seconds: int, batch_commands: int = 500
    ) -> OnlineTarget:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        return cls(
            settings.host,
            settings.port,
            settings.password,
            settings.db,
            ttl_seconds,
            batch_commands,
            settings.username,
        )


def format_value(value: object) -> str:
    """Decimal string for a feature value; repr() of a float round-trips exactly."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise TypeError(f"unsupported feature value {value!r}")


def write_rows(rows: Iterable[Row], target: OnlineTarget, feature_names: Sequence[str]) -> int:
    """Write one partition's rows; returns the number of entities written."""
    client = redis.Redis(
        host=target.host,
        port=target.port,
        username=target.username,
        password=target.password,
        db=target.db,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=60,
    )
    per_batch = max(1, target.batch_commands // COMMANDS_PER_ENTITY)
    written = 0
    try:
        pipe = client.pipeline(transaction=True)
        pending = 0
        for row in rows:
            key = KEY_PREFIX + str(row["entity_id"])
            mapping: dict[FieldT, EncodableT] = {
                name: format_value(row[name]) for name in feature_names if row[name] is not None
            }
            pipe.delete(key)
            if mapping:
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, target.ttl_seconds)
            pending += 1
            if pending >= per_batch:
                pipe.execute()
                written += pending
                pending = 0
        if pending:
            pipe.execute()
            written += pending
    finally:
        client.close()
    return written


def _write_partition(
    rows: Iterable[Row], target: OnlineTarget, feature_names: Sequence[str], counter: Accumulator[int]
) -> None:
    counter.add(write_rows(rows, target, feature_names))


def write_features(features: DataFrame, target: OnlineTarget, feature_names: Sequence[str]) -> int:
    """Write every row of ``features`` (entity_id + feature columns) to Redis."""
    spark = features.sparkSession
    counter = spark.sparkContext.accumulator(0)
    columns = ["entity_id", *feature_names]
    features.select(*columns).foreachPartition(
        partial(_write_partition, target=target, feature_names=list(feature_names), counter=counter)
    )
    return int(counter.value)
