"""The lake's tables: commits, time travel, schema checks, VACUUM, and what
a reader outside Spark (delta-rs) sees while a job writes and after one is
killed."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable, QueryBuilder
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import lake
from jobs.errors import JobError
from jobs.schema import EVENT_SCHEMA, features_schema
from jobs.session import PACKAGE_PARENT
from jobs.tests.conftest import Dataset, run_job
from jobs.timeutil import AsOf, parse_as_of


def test_as_of_is_a_version_or_a_time() -> None:
    assert parse_as_of("3") == AsOf(version=3)
    assert parse_as_of("2025-03-01T10:00:00") == AsOf(timestamp=datetime(2025, 3, 1, 10, tzinfo=UTC))
    assert AsOf(timestamp=datetime(2025, 3, 1, 10, tzinfo=UTC)).options() == {
        "timestampAsOf": "2025-03-01 10:00:00.000000"
    }
    with pytest.raises(argparse.ArgumentTypeError, match="neither a table version"):
        parse_as_of("yesterday")
    with pytest.raises(ValueError, match="exactly one"):
        AsOf()


def test_commits_and_time_travel(spark: SparkSession, tmp_path: Path) -> None:
    table = str(tmp_path / "t")
    rows = spark.range(10).select(F.col("id"), F.col("id").cast("string").alias("name"))
    assert lake.write(rows, table, overwrite=False, description="first") == 0
    between = datetime.now(UTC)
    time.sleep(1.1)  # commit timestamps are in milliseconds; keep the two apart
    with pytest.raises(JobError, match="already exists"):
        lake.write(rows, table, overwrite=False)
    assert lake.write(rows.limit(3), table, overwrite=True, description="second") == 1

    assert lake.read(spark, table).count() == 3
    assert lake.read(spark, table, as_of=AsOf(version=0)).count() == 10
    assert lake.read(spark, table, as_of=AsOf(timestamp=between)).count() == 10
    assert lake.resolved_version(spark, table, AsOf(timestamp=between)) == 0
    assert lake.resolved_version(spark, table, None) == 1
    with pytest.raises(JobError, match="Cannot time travel Delta table to version 7"):
        lake.read(spark, table, as_of=AsOf(version=7)).count()
    with pytest.raises(JobError, match="no version as of"):
        lake.resolved_version(spark, table, AsOf(timestamp=datetime(2000, 1, 1, tzinfo=UTC)))
    history = DeltaTable(table).history()
    assert [entry.get("userMetadata") for entry in history] == ["second", "first"]


def test_a_write_of_other_columns_names_the_column(spark: SparkSession, tmp_path: Path) -> None:
    table = str(tmp_path / "t")
    lake.write(spark.range(3).withColumn("name", F.lit("x")), table, overwrite=False)
    retyped = spark.range(3).withColumn("name", F.lit(1))
    with pytest.raises(JobError, match=r"column name is string in .* but int in the rows written to it"):
        lake.write(retyped, table, overwrite=True)
    with pytest.raises(JobError, match="lack its column name"):
        lake.write(spark.range(3), table, overwrite=True)
    with pytest.raises(JobError, match="has no column extra"):
        lake.write(
            spark.range(3).withColumn("name", F.lit("x")).withColumn("extra", F.lit(1)), table, overwrite=True
        )
    assert lake.current_version(spark, table) == 0  # nothing was committed


def test_a_read_with_the_wrong_schema_names_the_column(spark: SparkSession, tmp_path: Path) -> None:
    table = str(tmp_path / "events")
    frame = spark.createDataFrame(
        [(1, "u1", "login", 5)], "event_id long, entity_id string, event_type string, event_time long"
    )
    lake.write(frame, table, overwrite=False)
    with pytest.raises(JobError, match="column event_time is bigint, timestamp expected"):
        lake.read(spark, table, EVENT_SCHEMA)
    lake.write(frame.drop("event_type"), str(tmp_path / "narrow"), overwrite=False)
    with pytest.raises(JobError, match="has no column event_type"):
        lake.read(spark, str(tmp_path / "narrow"), EVENT_SCHEMA)


def test_a_directory_that_is_not_a_table(spark: SparkSession, tmp_path: Path) -> None:
    spark.range(3).write.parquet(str(tmp_path / "plain"))
    with pytest.raises(JobError, match="is not a Delta table"):
        lake.read(spark, str(tmp_path / "plain"))
    with pytest.raises(JobError, match="already exists"):
        lake.write(spark.range(3), str(tmp_path / "plain"), overwrite=False)
    # An earlier release's plain Parquet becomes a table with --overwrite.
    assert lake.write(spark.range(5), str(tmp_path / "plain"), overwrite=True) == 0
    assert lake.read(spark, str(tmp_path / "plain")).count() == 5
    with pytest.raises(JobError, match="does not exist"):
        lake.read(spark, str(tmp_path / "none"))


def data_files(table: Path) -> set[str]:
    return {str(p.relative_to(table)) for p in table.rglob("*.parquet") if "_delta_log" not in p.parts}


def committed_files(table: Path) -> set[str]:
    return {
        uri.removeprefix(f"{table}/").removeprefix(f"file://{table}/")
        for uri in DeltaTable(str(table)).file_uris()
    }


def test_vacuum_removes_only_what_no_retained_version_needs(spark: SparkSession, tmp_path: Path) -> None:
    table = tmp_path / "t"
    lake.write(spark.range(100).repartition(2), str(table), overwrite=False)
    lake.write(spark.range(50).repartition(2), str(table), overwrite=True)
    replaced = data_files(table) - committed_files(table)
    assert replaced

    with pytest.raises(JobError, match="retention"):
        run_job(spark, "vacuum", ["--table", str(table), "--retention-hours", "0"])
    run_job(spark, "vacuum", ["--table", str(table)])  # a week: nothing is that old
    assert data_files(table) >= replaced

    # Delta's guard against a retention below the table's own (a week) is
    # there for readers of old versions; none run here.
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        run_job(spark, "vacuum", ["--table", str(table), "--retention-hours", "0"])
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    assert data_files(table) == committed_files(table)
    assert lake.read(spark, str(table)).count() == 50


# A reader outside Spark: delta-rs, as a user's tool would read the lake.


def delta_rs_view(table: Path) -> tuple[int, int, int]:
    """(version, rows, distinct entities) of the table's current version."""
    current = DeltaTable(str(table))
    result = (
        QueryBuilder()
        .register("features", current)
        .execute("SELECT count(*) AS n, count(DISTINCT entity_id) AS e FROM features")
        .read_all()
    )
    return current.version(), result["n"][0].as_py(), result["e"][0].as_py()


@pytest.fixture
def features_table(spark: SparkSession, dataset: Dataset, tmp_path: Path) -> Path:
    table = tmp_path / "features"
    run_job(spark, "features", ["--input", dataset.events, "--output", str(table), "--no-online"])
    return table


def features_process(dataset: Dataset, table: Path) -> subprocess.Popen[bytes]:
    """The features job in a process of its own, as spark-submit would run it."""
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT, "DP_SPARK_LOG_LEVEL": "ERROR"}
    command = [sys.executable, "-m", "jobs", "run", "features", "--input", dataset.events]
    command += ["--output", str(table), "--no-online"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def watch(
    process: subprocess.Popen[bytes], table: Path, dataset: Dataset, *, kill_mid_write: bool
) -> Iterator[str]:
    """Poll the table with delta-rs until the process ends; yield what each
    poll saw that no complete version would show. With ``kill_mid_write``,
    kill the job once data files beyond the committed ones appear."""
    uncommitted_seen = False
    while process.poll() is None:
        version, rows, entities = delta_rs_view(table)
        if (rows, entities) != (dataset.entities, dataset.entities):
            yield f"version {version}: {rows} rows, {entities} entities"
        if data_files(table) - committed_files(table) and not uncommitted_seen:
            uncommitted_seen = True
            if kill_mid_write:
                os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.05)
    if not uncommitted_seen:
        yield "no poll saw the job's data files before its commit"


def test_delta_rs_sees_whole_versions_while_a_job_writes(features_table: Path, dataset: Dataset) -> None:
    assert delta_rs_view(features_table) == (0, dataset.entities, dataset.entities)
    process = features_process(dataset, features_table)
    try:
        partial = list(watch(process, features_table, dataset, kill_mid_write=False))
    finally:
        output = process.communicate()[0].decode()
    assert process.returncode == 0, output
    assert partial == []
    assert delta_rs_view(features_table) == (1, dataset.entities, dataset.entities)


def test_delta_rs_sees_the_last_version_after_a_job_is_killed(
    spark: SparkSession, features_table: Path, dataset: Dataset
) -> None:
    before = committed_files(features_table)
    process = features_process(dataset, features_table)
    try:
        partial = list(watch(process, features_table, dataset, kill_mid_write=True))
    finally:
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert partial == []
    # The dead job's files are there, and no version refers to them.
    assert data_files(features_table) - before
    assert committed_files(features_table) == before
    assert delta_rs_view(features_table) == (0, dataset.entities, dataset.entities)
    # Spark agrees, and the next run commits over the debris.
    assert lake.read(spark, str(features_table), features_schema()).count() == dataset.entities
    run_job(spark, "features", ["--input", dataset.events, "--output", str(features_table), "--no-online"])
    assert delta_rs_view(features_table) == (1, dataset.entities, dataset.entities)
