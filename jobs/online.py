"""Online copy of the features in Redis (contract "Online features").

Each run writes a version of its own, one hash per entity at
``features:v:<version>:<entity_id>`` (one field per feature, a decimal
string, a TTL), which no reader sees yet. Only when the whole version is
written, and the lake's features table has committed the same rows, does
the run switch ``features:current`` to it, in one SET: readers follow that pointer,
so they see the old version or the new one, never a mix, and a run that
dies half-way leaves the version that was serving untouched. After the
switch, versions older than the previous one are removed (the previous one
stays for readers that looked the pointer up just before the switch);
a failed run removes what it wrote, and the TTL covers a run killed outright.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import redis
from pyspark import Accumulator
from pyspark.sql import DataFrame, Row
from redis.typing import EncodableT, FieldT

from jobs.config import RedisSettings, redis_client

KEY_PREFIX = "features:"
POINTER_KEY = KEY_PREFIX + "current"
VERSIONS_PREFIX = KEY_PREFIX + "v:"
COMMANDS_PER_ENTITY = 2
SCAN_COUNT = 1000


@dataclass(frozen=True)
class OnlineTarget:
    """Everything an executor needs; pickled into the task closure."""

    server: RedisSettings
    ttl_seconds: int
    batch_commands: int = 500

    @classmethod
    def from_settings(
        cls, settings: RedisSettings, ttl_seconds: int, batch_commands: int = 500
    ) -> OnlineTarget:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        return cls(settings, ttl_seconds, batch_commands)


def format_value(value: object) -> str:
    """Decimal string for a feature value; repr() of a float round-trips exactly."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise TypeError(f"unsupported feature value {value!r}")


def version_prefix(version: str) -> str:
    return f"{VERSIONS_PREFIX}{version}:"


def entity_key(version: str, entity_id: str) -> str:
    return version_prefix(version) + entity_id


def connect(target: OnlineTarget) -> redis.Redis:
    return redis_client(target.server, timeout=60)


def write_rows(rows: Iterable[Row], target: OnlineTarget, feature_names: Sequence[str], version: str) -> int:
    """Write one partition's rows into ``version``; returns the entities written.

    The version's keys are new and unread until the switch, so a plain
    pipeline suffices: no transaction, no DEL of an earlier hash.
    """
    client = connect(target)
    per_batch = max(1, target.batch_commands // COMMANDS_PER_ENTITY)
    written = 0
    try:
        pipe = client.pipeline(transaction=False)
        pending = 0
        for row in rows:
            key = entity_key(version, str(row["entity_id"]))
            mapping: dict[FieldT, EncodableT] = {
                name: format_value(row[name]) for name in feature_names if row[name] is not None
            }
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
    rows: Iterable[Row],
    target: OnlineTarget,
    feature_names: Sequence[str],
    version: str,
    counter: Accumulator[int],
) -> None:
    counter.add(write_rows(rows, target, feature_names, version))


def write_features(
    features: DataFrame, target: OnlineTarget, feature_names: Sequence[str], version: str
) -> int:
    """Write every row of ``features`` (entity_id + feature columns) into
    ``version``, which readers do not see until ``switch``."""
    spark = features.sparkSession
    counter = spark.sparkContext.accumulator(0)
    columns = ["entity_id", *feature_names]
    features.select(*columns).foreachPartition(
        partial(
            _write_partition,
            target=target,
            feature_names=list(feature_names),
            version=version,
            counter=counter,
        )
    )
    return int(counter.value)


def text(value: bytes | str | None) -> str | None:
    """A reply of a client without decode_responses, as text."""
    return value.decode() if isinstance(value, bytes) else value


def _versions(client: redis.Redis) -> set[str]:
    found: set[str] = set()
    for key in client.scan_iter(match=VERSIONS_PREFIX + "*", count=SCAN_COUNT):
        name = text(key) or ""
        found.add(name[len(VERSIONS_PREFIX) :].split(":", 1)[0])
    return found


def _remove(client: redis.Redis, version: str) -> int:
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=version_prefix(version) + "*", count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= SCAN_COUNT:
            removed += int(client.unlink(*batch))
            batch = []
    if batch:
        removed += int(client.unlink(*batch))
    return removed


def switch(target: OnlineTarget, version: str) -> tuple[str | None, list[str]]:
    """Make ``version`` the live one, in one step, and remove versions older
    than the one it replaces. Returns (the version replaced, versions removed)."""
    client = connect(target)
    try:
        previous = client.set(POINTER_KEY, version, get=True)
        # SET ... GET replies with the old value or nil; the client's types
        # also allow the True of a SET without GET.
        previous_name = None if isinstance(previous, bool) else text(previous)
        stale = sorted(_versions(client) - {version, previous_name or ""})
        for name in stale:
            _remove(client, name)
    finally:
        client.close()
    return previous_name, stale


def live_version(target: OnlineTarget) -> str | None:
    """The version ``features:current`` names, if any."""
    client = connect(target)
    try:
        return text(client.get(POINTER_KEY))
    finally:
        client.close()


def discard(target: OnlineTarget, version: str) -> int:
    """Remove what a failed run wrote into ``version`` (never the live one)."""
    client = connect(target)
    try:
        if text(client.get(POINTER_KEY)) == version:
            return 0
        return _remove(client, version)
    finally:
        client.close()
