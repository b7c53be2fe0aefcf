from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import features, lake, online
from jobs.config import RedisSettings, Settings
from jobs.errors import JobError
from jobs.schema import EVENT_SCHEMA, EVENT_TYPES, RATE_WINDOWS, feature_names, features_schema
from jobs.tests.conftest import Dataset, RedisServer, run_job
from jobs.timeutil import AsOf
from jobs.uploads import free_port

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def reference_features(events: list[tuple[str, str, int]], ref_us: int) -> dict[str, dict[str, Any]]:
    """Plain-Python features from (entity_id, event_type, event_time_us)."""
    by_entity: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for entity, event_type, at in events:
        if at <= ref_us:
            by_entity[entity].append((event_type, at))
    result: dict[str, dict[str, Any]] = {}
    for entity, rows in by_entity.items():
        total = len(rows)
        values: dict[str, Any] = {"events_total": total}
        for t in EVENT_TYPES:
            values[f"count_{t}"] = sum(1 for et, _ in rows if et == t)
        for t in EVENT_TYPES:
            values[f"share_{t}"] = values[f"count_{t}"] / total
        for suffix, seconds in RATE_WINDOWS:
            in_window = sum(1 for _, at in rows if at > ref_us - seconds * 1_000_000)
            values[f"rate_{suffix}"] = in_window / (seconds / 86_400)
        values["recency_seconds"] = (ref_us - max(at for _, at in rows)) / 1_000_000
        result[entity] = values
    return result


def as_dicts(rows: list[Any]) -> dict[str, dict[str, Any]]:
    return {r["entity_id"]: {n: r[n] for n in feature_names()} for r in rows}


def test_features_of_hand_made_events(spark: SparkSession) -> None:
    ref = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    raw = [
        (1, "a", "login", ref - timedelta(days=9)),
        (2, "a", "purchase", ref - timedelta(days=3)),
        (3, "a", "purchase", ref - timedelta(hours=2, microseconds=250)),
        (4, "b", "support_ticket", ref - timedelta(days=8)),
        (5, "b", "page_view", ref),  # exactly at the reference: included
        (6, "b", "page_view", ref + timedelta(seconds=1)),  # after it: ignored
        (7, "c", "payment_failed", ref + timedelta(days=1)),  # entity with only future events
    ]
    events = spark.createDataFrame(raw, EVENT_SCHEMA)
    got = as_dicts(features.compute_features(events, ref).collect())
    expected = reference_features([(e, t, micros(at)) for _, e, t, at in raw], micros(ref))
    assert got == expected
    assert got["a"]["recency_seconds"] == 7200.00025
    assert got["b"]["rate_7d"] == 1 / 7
    assert set(got) == {"a", "b"}


def test_features_of_generated_events_match_plain_python(spark: SparkSession, dataset: Dataset) -> None:
    events = lake.read(spark, dataset.events)
    ref_us = events.agg(F.max(F.unix_micros("event_time"))).first()[0]  # type: ignore[index]
    reference_time = EPOCH + timedelta(microseconds=ref_us)
    assert features.latest_event_time(events) == reference_time
    plain = [
        (r[0], r[1], r[2])
        for r in events.select("entity_id", "event_type", F.unix_micros("event_time")).collect()
    ]
    got = as_dicts(features.compute_features(events, reference_time).collect())
    # Same IEEE operations in both: the values are equal, not just close.
    assert got == reference_features(plain, ref_us)
    assert len(got) == dataset.entities


def redis_settings(server: RedisServer) -> Settings:
    return Settings(redis=server.settings)


def online_keys(client: Any, version: str) -> list[str]:
    return sorted(client.scan_iter(match=f"features:v:{version}:*", count=1000))


def test_job_commits_a_version_and_an_online_copy(
    spark: SparkSession, dataset: Dataset, tmp_path: Path, redis_flushed: RedisServer
) -> None:
    root = tmp_path / "features"
    client = redis_flushed.client()
    args = [
        "--input",
        dataset.events,
        "--output",
        str(root),
        "--version",
        "20250301T000000Z",
        "--reference-time",
        "2025-03-10T00:00:00Z",
        "--ttl-seconds",
        "3600",
        "--batch-commands",
        "30",
    ]
    run_job(spark, "features", args, redis_settings(redis_flushed))

    assert lake.current_version(spark, str(root)) == 0
    published = as_dicts(lake.read(spark, str(root), features_schema()).collect())
    events = lake.read(spark, dataset.events)
    expected = features.compute_features(events, datetime(2025, 3, 10, tzinfo=UTC)).collect()
    assert published == as_dicts(expected)

    assert client.get("features:current") == "20250301T000000Z"
    keys = online_keys(client, "20250301T000000Z")
    assert keys == sorted(f"features:v:20250301T000000Z:{e}" for e in published)
    for entity, values in published.items():
        stored = client.hgetall(f"features:v:20250301T000000Z:{entity}")
        assert stored == {name: online.format_value(v) for name, v in values.items()}
        assert {float(v) for v in stored.values()} == {float(v) for v in values.values()}
    assert 3500 < client.ttl(keys[0]) <= 3600

    # Each run makes a version live in one step; the one it replaced stays
    # for readers that looked the pointer up just before, older ones go.
    for version in ("20250302T000000Z", "20250303T000000Z"):
        rerun = [*args[:4], "--version", version, *args[6:]]
        run_job(spark, "features", rerun, redis_settings(redis_flushed))
    assert lake.current_version(spark, str(root)) == 2
    assert client.get("features:current") == "20250303T000000Z"
    assert online_keys(client, "20250301T000000Z") == []
    assert len(online_keys(client, "20250302T000000Z")) == len(published)
    assert len(online_keys(client, "20250303T000000Z")) == len(published)


def test_a_failed_run_leaves_the_serving_features_intact(
    spark: SparkSession,
    dataset: Dataset,
    tmp_path: Path,
    redis_flushed: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that dies half-way through writing Redis changes nothing a
    reader sees: the pointer, the live hashes, the lake's table."""
    root = tmp_path / "features"
    client = redis_flushed.client()
    base = ["--input", dataset.events, "--output", str(root), "--batch-commands", "10"]
    run_job(spark, "features", [*base, "--version", "20250301T000000Z"], redis_settings(redis_flushed))
    live = {key: client.hgetall(key) for key in online_keys(client, "20250301T000000Z")}
    assert live

    monkeypatch.setattr(online, "write_features", _writes_then_fails(online.write_rows))
    with pytest.raises(RuntimeError, match="executor lost"):
        run_job(spark, "features", [*base, "--version", "20250302T000000Z"], redis_settings(redis_flushed))

    assert client.get("features:current") == "20250301T000000Z"
    assert {key: client.hgetall(key) for key in online_keys(client, "20250301T000000Z")} == live
    assert online_keys(client, "20250302T000000Z") == []  # the partial version is removed
    assert lake.current_version(spark, str(root)) == 0


def _writes_then_fails(original_write_rows: Any) -> Any:
    """A write_features that writes part of the version, then fails as a
    lost executor would."""

    def write_features(frame: Any, target: Any, names: Any, version: str) -> int:
        rows = [row.asDict() for row in frame.select("entity_id", *names).limit(7).collect()]
        original_write_rows(iter(rows), target, names, version)
        raise RuntimeError("executor lost")

    return write_features


def test_as_of_reads_an_earlier_version_of_the_events(
    spark: SparkSession, dataset: Dataset, tmp_path: Path
) -> None:
    events = str(tmp_path / "events")
    first = lake.read(spark, dataset.events).where(F.col("entity_id") < "u00000500")
    lake.write(first, events, overwrite=False)
    lake.write(lake.read(spark, dataset.events), events, overwrite=True)
    out = str(tmp_path / "features")
    run_job(spark, "features", ["--input", events, "--output", out, "--no-online", "--as-of", "0"])
    assert lake.read(spark, out).count() == first.select("entity_id").distinct().count()
    run_job(spark, "features", ["--input", events, "--output", out, "--no-online"])
    assert lake.read(spark, out).count() == dataset.entities
    # train --as-of reads the features the same way: version 0 is the first run's.
    assert lake.read(spark, out, as_of=AsOf(version=0)).count() < dataset.entities

    plain = ["--input", events, "--input-format", "parquet", "--as-of", "0", "--output", out, "--no-online"]
    with pytest.raises(JobError, match="--as-of needs a Delta table"):
        run_job(spark, "features", plain)


def test_a_features_table_of_other_columns_is_refused_before_any_write(
    spark: SparkSession, dataset: Dataset, tmp_path: Path, redis_flushed: RedisServer
) -> None:
    out = str(tmp_path / "features")
    lake.write(spark.range(3).withColumnRenamed("id", "entity_id"), out, overwrite=False)
    with pytest.raises(
        JobError, match=r"column entity_id is bigint in .* but string in the rows written to it"
    ):
        run_job(
            spark, "features", ["--input", dataset.events, "--output", out], redis_settings(redis_flushed)
        )
    assert redis_flushed.client().dbsize() == 0
    assert lake.current_version(spark, out) == 0


def test_unreachable_redis_fails_before_any_output(
    spark: SparkSession, dataset: Dataset, tmp_path: Path
) -> None:
    settings = Settings(redis=RedisSettings(host="127.0.0.1", port=free_port(), password="x"))
    started = time.monotonic()
    with pytest.raises(JobError, match=r"Redis at 127\.0\.0\.1:\d+ is unreachable"):
        run_job(spark, "features", ["--input", dataset.events, "--output", str(tmp_path / "f")], settings)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "f").exists()


def test_wrong_redis_password(
    spark: SparkSession, dataset: Dataset, tmp_path: Path, redis_server: RedisServer
) -> None:
    wrong = RedisSettings(host="127.0.0.1", port=redis_server.settings.port, password="wrong")
    with pytest.raises(JobError, match="rejected the credentials"):
        run_job(
            spark,
            "features",
            ["--input", dataset.events, "--output", str(tmp_path / "f")],
            Settings(redis=wrong),
        )


def test_online_needs_redis_settings(spark: SparkSession, dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(JobError, match="DP_REDIS_HOST"):
        run_job(spark, "features", ["--input", dataset.events, "--output", str(tmp_path / "f")])


def test_missing_input(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(JobError, match="does not exist"):
        run_job(
            spark,
            "features",
            ["--input", str(tmp_path / "none"), "--output", str(tmp_path), "--no-online"],
        )


def test_redis_writer_batches(redis_flushed: RedisServer) -> None:
    target = online.OnlineTarget.from_settings(redis_flushed.settings, ttl_seconds=60, batch_commands=7)
    rows = [{"entity_id": f"e{i}", "x": i, "y": i / 3} for i in range(10)]
    assert online.write_rows(iter(rows), target, ["x", "y"], "v1") == 10  # type: ignore[arg-type]
    client = redis_flushed.client()
    assert client.hgetall("features:v:v1:e9") == {"x": "9", "y": repr(3.0)}
    assert client.hgetall("features:v:v1:e1") == {"x": "1", "y": repr(1 / 3)}
    assert len(list(client.scan_iter(match="features:*"))) == 10
    assert client.get("features:current") is None  # written, not yet live
    assert online.switch(target, "v1") == (None, [])
    assert online.discard(target, "v1") == 0  # the live version is never discarded
    assert client.get("features:current") == "v1"


# The events pipeline keeps its strict typed reader: CSV input that does not
# match the raw event schema fails the job instead of becoming nulls.


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,user,kind,time\n1,u1,login,2025-03-01 00:00:00\n", "does not match the expected schema"),
        (
            "event_id,entity_id,event_type,event_time\n1,u1,login,2025-03-01 00:00:00\n"
            "two,u1,login,2025-03-01 00:00:01\n",
            "does not match the expected schema",
        ),
        ("event_id,entity_id,event_type,event_time\n1,,login,2025-03-01 00:00:00\n", "non-nullable"),
    ],
    ids=["other-header", "unparsable-value", "empty-required-field"],
)
def test_csv_events_must_match_the_schema(
    spark: SparkSession, tmp_path: Path, content: str, message: str
) -> None:
    source = tmp_path / "events.csv"
    source.write_text(content)
    args = ["--input", str(source), "--input-format", "csv", "--no-online", "--output", f"{tmp_path}/f"]
    with pytest.raises(JobError, match=message):
        run_job(spark, "features", args)
    assert not lake.is_table(spark, f"{tmp_path}/f")
