from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.errors import JobError
from jobs.tests.conftest import START, run_job


@pytest.fixture(scope="module")
def events_csv(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("csv")
    run_job(
        spark,
        "datagen",
        [
            "--rows",
            "4000",
            "--entities",
            "40",
            "--format",
            "csv",
            "--start",
            START.isoformat(),
            "--days",
            "2",
            "--output",
            str(base / "events"),
            "--labels-output",
            str(base / "labels"),
        ],
    )
    return base / "events"


def csv_rows(directory: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for part in sorted(directory.glob("part-*.csv")):
        with part.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


@pytest.mark.parametrize("column", ["event_type", "entity_id"])
def test_counts_match_plain_python(
    spark: SparkSession, events_csv: Path, tmp_path: Path, column: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = Counter(row[column] for row in csv_rows(events_csv))
    output = tmp_path / "counts"
    run_job(spark, "event_counts", [str(events_csv), "--column", column, "--output", str(output)])
    written = {r[column]: r["count"] for r in spark.read.parquet(str(output)).collect()}
    assert written == dict(expected)
    printed = capsys.readouterr().out
    top_value, top_count = expected.most_common(1)[0]
    assert f"{top_value}\t{top_count}" in printed


def test_csv_output(spark: SparkSession, events_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "counts"
    run_job(spark, "event_counts", [str(events_csv), "--output", str(output), "--format", "csv"])
    written = {r["event_type"]: int(r["count"]) for r in csv_rows(output)}
    assert written == dict(Counter(row["event_type"] for row in csv_rows(events_csv)))
    assert (output / "_SUCCESS").exists()


def test_missing_input_fails_fast(spark: SparkSession, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(JobError, match="does not exist"):
        run_job(spark, "event_counts", [str(tmp_path / "nope.csv"), "--output", str(tmp_path / "out")])
    assert time.monotonic() - started < 10


def test_header_that_does_not_match_the_schema(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text("id,user,kind,time\n1,u1,login,2025-03-01 00:00:00\n")
    with pytest.raises(JobError, match="does not match the expected schema"):
        run_job(spark, "event_counts", [str(source), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["events.csv"]


def test_value_that_does_not_parse(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text(
        "event_id,entity_id,event_type,event_time\n"
        "1,u1,login,2025-03-01 00:00:00\n"
        "two,u1,login,2025-03-01 00:00:01\n"
    )
    with pytest.raises(JobError, match="does not match the expected schema"):
        run_job(spark, "event_counts", [str(source), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_unknown_column(spark: SparkSession, events_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(JobError, match="unknown column 'colour'"):
        run_job(
            spark, "event_counts", [str(events_csv), "--column", "colour", "--output", str(tmp_path / "out")]
        )


def test_empty_required_field(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text("event_id,entity_id,event_type,event_time\n1,,login,2025-03-01 00:00:00\n")
    with pytest.raises(JobError, match="non-nullable"):
        run_job(spark, "event_counts", [str(source), "--output", str(tmp_path / "out")])
