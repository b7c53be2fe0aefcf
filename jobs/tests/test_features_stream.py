"""The streaming features job on a local landing directory, a local Delta
table and a real Redis: what it appends, what it refuses, what it writes
online, and that a replay changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs import features, features_stream, lake
from jobs.schema import EVENT_SCHEMA
from jobs.tests.conftest import RedisServer, run_job
from jobs.tests.test_features import as_dicts, micros, redis_settings

EVENTS = [
    (1, "u1", "login", "2025-03-01T10:00:00Z"),
    (2, "u1", "purchase", "2025-03-02T10:00:00Z"),
    (3, "u2", "page_view", "2025-03-03T10:00:00Z"),
]


def event_line(event_id: int, entity: str, event_type: str, at: str) -> str:
    return json.dumps({"event_id": event_id, "entity_id": entity, "event_type": event_type, "event_time": at})


def land(landing: Path, name: str, lines: list[str]) -> Path:
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


class Paths:
    def __init__(self, base: Path) -> None:
        self.landing = base / "landing"
        self.quarantine = base / "quarantine"
        self.events = base / "events"
        self.checkpoint = base / "checkpoint"

    def argv(self) -> list[str]:
        return [
            "--landing",
            str(self.landing),
            "--quarantine",
            str(self.quarantine),
            "--events",
            str(self.events),
            "--checkpoint",
            str(self.checkpoint),
            "--once",
        ]


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


@pytest.fixture(autouse=True)
def session_settings_restored(spark: SparkSession) -> Iterator[None]:
    """The stream sets these on its session; the tests share one."""
    keys = ("spark.sql.shuffle.partitions", "spark.sql.files.ignoreMissingFiles")
    saved = {key: spark.conf.get(key) for key in keys}
    yield
    for key, value in saved.items():
        spark.conf.set(key, value)


def stream(spark: SparkSession, paths: Paths, server: RedisServer) -> None:
    run_job(spark, "features_stream", paths.argv(), redis_settings(server))


def online(client: Any, entity: str) -> dict[str, float]:
    live = client.get("features:current")
    return {k: float(v) for k, v in client.hgetall(f"features:v:{live}:{entity}").items()}


def batch_values(spark: SparkSession, table: str) -> dict[str, dict[str, float]]:
    """What the batch job computes over the table, at its default reference."""
    events = lake.read(spark, table, EVENT_SCHEMA)
    rows = features.compute_features(events, features.latest_event_time(events)).collect()
    return {e: {k: float(v) for k, v in values.items()} for e, values in as_dicts(rows).items()}


def test_landed_events_reach_the_table_and_redis_as_the_batch_job_computes_them(
    spark: SparkSession, paths: Paths, redis_flushed: RedisServer
) -> None:
    client = redis_flushed.client()
    land(paths.landing, "a.jsonl", [event_line(*e) for e in EVENTS])
    stream(spark, paths, redis_flushed)

    assert lake.read(spark, str(paths.events)).count() == 3
    expected = batch_values(spark, str(paths.events))
    # No batch run yet: the stream names a live version itself.
    assert client.get("features:current") is not None
    assert {e: online(client, e) for e in ("u1", "u2")} == expected

    # A later event moves the reference: the entity it touches is as the
    # batch job computes it now; u2, untouched, keeps its values.
    land(paths.landing, "b.jsonl", [event_line(4, "u1", "support_ticket", "2025-03-05T10:00:00Z")])
    stream(spark, paths, redis_flushed)
    expected_now = batch_values(spark, str(paths.events))
    assert online(client, "u1") == expected_now["u1"]
    assert online(client, "u2") == expected["u2"]
    state = json.loads(client.get(features_stream.STATE_KEY))
    assert state["batch"] == 1
    assert state["reference_us"] == micros(features.latest_event_time(lake.read(spark, str(paths.events))))


def test_a_landing_directory_that_does_not_exist_yet_is_made(
    spark: SparkSession, paths: Paths, redis_flushed: RedisServer
) -> None:
    stream(spark, paths, redis_flushed)
    assert paths.landing.is_dir()
    assert not lake.is_table(spark, str(paths.events))
    assert redis_flushed.client().get(features_stream.STATE_KEY) is None


def test_refused_files_go_to_quarantine_with_the_reason_and_the_rest_is_taken(
    spark: SparkSession, paths: Paths, redis_flushed: RedisServer
) -> None:
    land(paths.landing, "good.jsonl", [event_line(*EVENTS[0])])
    land(paths.landing, "not-json.jsonl", [event_line(*EVENTS[1]), "entity_id,event_type"])
    land(paths.landing, "columns.jsonl", [json.dumps({"user": "u9", "kind": "login"})])
    land(paths.landing, "type.jsonl", [event_line(5, "u3", "refund", "2025-03-01T00:00:00Z")])
    land(paths.landing, "time.jsonl", [event_line(6, "u3", "login", "yesterday")])
    stream(spark, paths, redis_flushed)

    rows = lake.read(spark, str(paths.events), EVENT_SCHEMA).collect()
    assert [r["event_id"] for r in rows] == [1]
    reasons = {
        p.name.removesuffix(features_stream.REASON_SUFFIX): p.read_text()
        for p in paths.quarantine.glob(f"*{features_stream.REASON_SUFFIX}")
    }
    assert sorted(reasons) == ["columns.jsonl", "not-json.jsonl", "time.jsonl", "type.jsonl"]
    not_json = "not a JSON object of the event columns: entity_id,event_type"
    assert reasons["not-json.jsonl"].startswith(not_json)
    assert reasons["columns.jsonl"].startswith("no value for event_id (expected bigint)")
    assert reasons["type.jsonl"].startswith("unknown event_type refund")
    assert "yesterday" in reasons["time.jsonl"]
    # Moved whole: gone from landing, kept in quarantine.
    assert sorted(p.name for p in paths.landing.iterdir()) == ["good.jsonl"]
    assert (paths.quarantine / "not-json.jsonl").read_text().count("\n") == 2
    assert online(redis_flushed.client(), "u1")["events_total"] == 1.0
    assert online(redis_flushed.client(), "u3") == {}


def test_a_replayed_batch_changes_nothing(
    spark: SparkSession, paths: Paths, redis_flushed: RedisServer
) -> None:
    client = redis_flushed.client()
    land(paths.landing, "a.jsonl", [event_line(*e) for e in EVENTS])
    stream(spark, paths, redis_flushed)
    version = lake.current_version(spark, str(paths.events))
    before = {e: online(client, e) for e in ("u1", "u2")}

    # The batch again, as after a crash between the commit and the
    # checkpoint: Redis holds it, so it is skipped whole...
    job = features_stream.Stream(
        spark,
        str(paths.events),
        str(paths.quarantine),
        features_stream.online.OnlineTarget.from_settings(redis_flushed.settings, 3600),
        features_stream.stream_id(spark, str(paths.checkpoint)),
    )
    landed = (
        spark.read.schema(features_stream.LANDING_SCHEMA)
        .json(str(paths.landing))
        .withColumn(features_stream.FILE, features_stream.F.col("_metadata.file_path"))
    )
    job.process(landed, 0)
    assert lake.current_version(spark, str(paths.events)) == version
    # ...and were Redis to have lost it, Delta still refuses the second commit.
    client.delete(features_stream.STATE_KEY)
    job.process(landed, 0)
    assert lake.read(spark, str(paths.events)).count() == 3
    assert {e: online(client, e) for e in ("u1", "u2")} == before

    # A restart resumes from the checkpoint: nothing is read twice.
    stream(spark, paths, redis_flushed)
    assert lake.read(spark, str(paths.events)).count() == 3


def test_the_stream_reads_only_the_event_columns_of_an_existing_table(
    spark: SparkSession, paths: Paths, redis_flushed: RedisServer
) -> None:
    spark.createDataFrame([("x",)], "other string").write.format("delta").save(str(paths.events))
    land(paths.landing, "a.jsonl", [event_line(*EVENTS[0])])
    with pytest.raises(features_stream.JobError, match="has no column event_id"):
        stream(spark, paths, redis_flushed)
