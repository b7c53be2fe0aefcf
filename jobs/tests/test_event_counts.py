from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import lake
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
    written = {r[column]: r["count"] for r in lake.read(spark, str(output)).collect()}
    assert written == dict(expected)
    printed = capsys.readouterr().out
    top_value, top_count = expected.most_common(1)[0]
    assert f"{top_value}\t{top_count}" in printed


def test_csv_output(spark: SparkSession, events_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "counts"
    args = [str(events_csv), "--column", "event_type", "--output", str(output), "--format", "csv"]
    run_job(spark, "event_counts", args)
    written = {r["event_type"]: int(r["count"]) for r in csv_rows(output)}
    assert written == dict(Counter(row["event_type"] for row in csv_rows(events_csv)))
    assert (output / "_SUCCESS").exists()


def test_missing_input_fails_fast(spark: SparkSession, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(JobError, match="does not exist"):
        run_job(spark, "event_counts", [str(tmp_path / "nope.csv"), "--output", str(tmp_path / "out")])
    assert time.monotonic() - started < 10


def test_unknown_column_lists_the_columns(spark: SparkSession, events_csv: Path) -> None:
    with pytest.raises(JobError) as raised:
        run_job(spark, "event_counts", [str(events_csv), "--column", "colour"])
    assert str(raised.value) == (
        "unknown column 'colour'; the file's columns are: event_id, entity_id, event_type, event_time"
    )


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_group_by_count_on_a_csv_of_any_columns(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """spark.read.csv("data.csv").groupBy("column1").count(), counted exactly,
    with fields that hold the delimiter, quotes and newlines."""
    values = ["a", "b, with a comma", 'say "hi"', "two\nlines", "007", "7", ""]
    rows = [[values[(i * 7 + i // 3) % len(values)], str(i)] for i in range(500)]
    source = write_csv(tmp_path / "data.csv", ["column1", "column2"], rows)
    output = tmp_path / "counts"
    run_job(spark, "event_counts", [str(source), "--column", "column1", "--output", str(output)])
    expected = Counter(row[0] if row[0] != "" else None for row in rows)
    written = {r["column1"]: r["count"] for r in lake.read(spark, str(output)).collect()}
    assert written == dict(expected)
    assert {"007", "7"} <= set(written)  # read as text: nothing is guessed
    printed = capsys.readouterr().out
    assert printed.startswith("column1\tcount\n")
    assert f"b, with a comma\t{expected['b, with a comma']}" in printed


def test_default_column_is_the_first_and_output_is_optional(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "x.csv", ["city", "n"], [["Oslo", "1"], ["Rome", "2"], ["Oslo", "3"]])
    run_job(spark, "event_counts", [str(source)])
    assert capsys.readouterr().out.splitlines() == ["city\tcount", "Oslo\t2", "Rome\t1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


def test_a_column_named_count(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "c.csv", ["count"], [["x"], ["x"], ["y"]])
    run_job(spark, "event_counts", [str(source)])
    assert capsys.readouterr().out.splitlines() == ["count\trows", "x\t2", "y\t1"]


def test_other_delimiter(spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "semi.csv"
    source.write_text('k;v\n"a;b";1\nc;2\n"a;b";3\n')
    run_job(spark, "event_counts", [str(source), "--delimiter", ";", "--column", "k"])
    assert capsys.readouterr().out.splitlines() == ["k\tcount", "a;b\t2", "c\t1"]


def test_a_malformed_file_fails_with_its_name(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("a,b\n1,2\n3,4,5\n")  # a row with more fields than the header
    with pytest.raises(JobError, match=r"bad\.csv"):
        run_job(spark, "event_counts", [str(source), "--column", "a"])
