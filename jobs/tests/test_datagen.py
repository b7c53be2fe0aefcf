from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import datagen, lake
from jobs.errors import JobError
from jobs.schema import EVENT_SCHEMA, EVENT_TYPES, LABEL_SCHEMA
from jobs.tests.conftest import START, generate, run_job
from jobs.timeutil import AsOf


def test_output_does_not_depend_on_partitioning(spark: SparkSession) -> None:
    assert generate(spark, 5_000, 50, partitions=1) == generate(spark, 5_000, 50, partitions=7)


def test_seed_changes_output(spark: SparkSession) -> None:
    assert generate(spark, 2_000, 50, seed=1) != generate(spark, 2_000, 50, seed=2)


def test_events_are_well_formed(spark: SparkSession) -> None:
    rows = generate(spark, 20_000, 100)
    assert [r[0] for r in rows] == list(range(20_000))
    entities = {r[1] for r in rows}
    assert entities <= {f"u{i:08d}" for i in range(100)}
    assert len(entities) == 100  # 200 events per entity on average: all appear
    assert {r[2] for r in rows} == set(EVENT_TYPES)
    end = START + timedelta(days=3)
    assert all(START.replace(tzinfo=None) <= r[3] < end.replace(tzinfo=None) for r in rows)


def test_propensity_drives_event_mix_and_label(spark: SparkSession) -> None:
    events = datagen.generate_events(spark, rows=40_000, entities=400, start=START, days=10, seed=5)
    labels: dict[str, int] = dict(datagen.generate_labels(spark, entities=400, seed=5).collect())
    by_label: dict[int, Counter[str]] = {0: Counter(), 1: Counter()}
    for entity, event_type in events.select("entity_id", "event_type").collect():
        by_label[labels[entity]][event_type] += 1

    def share(label: int, event_type: str) -> float:
        return by_label[label][event_type] / sum(by_label[label].values())

    assert share(1, "support_ticket") > 1.5 * share(0, "support_ticket")
    assert share(1, "purchase") < 0.75 * share(0, "purchase")


def test_job_writes_events_and_labels(spark: SparkSession, tmp_path: Path) -> None:
    events, labels = str(tmp_path / "events"), str(tmp_path / "labels")
    run_job(
        spark,
        "datagen",
        [
            "--rows",
            "3000",
            "--entities",
            "30",
            "--output",
            events,
            "--labels-output",
            labels,
            "--start",
            START.isoformat(),
            "--days",
            "3",
            "--seed",
            "3",
            "--partitions",
            "2",
        ],
    )
    written = lake.read(spark, events, EVENT_SCHEMA)
    assert sorted(tuple(r) for r in written.collect()) == generate(spark, 3000, 30)
    label_rows = lake.read(spark, labels, LABEL_SCHEMA).collect()
    assert sorted(r.entity_id for r in label_rows) == [f"u{i:08d}" for i in range(30)]
    assert {r.label for r in label_rows} <= {0, 1}
    assert lake.current_version(spark, events) == 0


def test_plain_parquet_output(spark: SparkSession, tmp_path: Path) -> None:
    events, labels = str(tmp_path / "events"), str(tmp_path / "labels")
    args = ["--rows", "100", "--entities", "10", "--output", events, "--labels-output", labels]
    run_job(spark, "datagen", [*args, "--format", "parquet"])
    assert not lake.is_table(spark, events)
    assert spark.read.schema(EVENT_SCHEMA).parquet(events).count() == 100


def test_job_refuses_to_replace_output_unless_told(spark: SparkSession, tmp_path: Path) -> None:
    events, labels = str(tmp_path / "events"), str(tmp_path / "labels")
    args = ["--rows", "100", "--entities", "10", "--output", events, "--labels-output", labels]
    run_job(spark, "datagen", args)
    with pytest.raises(JobError, match="already exists"):
        run_job(spark, "datagen", args)
    run_job(spark, "datagen", [*args, "--rows", "200", "--overwrite"])
    # One commit replaced the rows; the first version is still readable.
    assert lake.read(spark, events).count() == 200
    assert lake.read(spark, events, as_of=AsOf(version=0)).count() == 100


def test_default_paths_need_the_object_store(spark: SparkSession) -> None:
    with pytest.raises(JobError, match="DP_S3_ENDPOINT"):
        run_job(spark, "datagen", ["--rows", "10"])
