"""The lake's tables: Delta Lake on the object store.

A Delta table is a directory of Parquet files and a ``_delta_log/`` of
numbered JSON commits. A commit is one object, written only after every
data file it names is complete, and a reader (Spark, delta-rs, DuckDB,
Polars) builds a version from the log alone: files not yet committed, or
left behind by a job that died, are invisible to every reader. So a write is
atomic, every earlier version stays readable (time travel) until VACUUM
removes the files no retained version needs, and the table's schema lives in
the log, where a write of other columns is refused.

On S3A, Delta's default log store allows one writer per table at a time
(the commit is a plain PUT); each table here has exactly one writing job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs import storage
from jobs.errors import JobError
from jobs.timeutil import AsOf

FORMAT = "delta"
LOG_DIRECTORY = "_delta_log"


def is_table(spark: SparkSession, path: str) -> bool:
    """True once the table has a commit (or a checkpoint) in its log: a
    first write that failed leaves an empty ``_delta_log``, and no table."""
    return storage.exists(spark, storage.join(path, LOG_DIRECTORY, "[0-9]*"))


@contextlib.contextmanager
def delta_errors(path: str) -> Iterator[None]:
    """Delta's refusals (no such version, a time before the table existed,
    VACUUM below the retention) as a JobError naming the table."""
    try:
        yield
    except (Py4JJavaError, PySparkException) as exc:
        detail = storage.java_message(exc) if isinstance(exc, Py4JJavaError) else str(exc)
        # Delta's error classes, and its older messages that have none.
        if "DELTA_" in detail or "Delta table" in detail:
            raise JobError(f"{path}: {detail.strip().splitlines()[0]}") from exc
        raise


def check_schema(actual: StructType, expected: StructType, path: str) -> None:
    """Fail naming the first expected column that is missing or of another type.

    Nullability is not compared: Delta stores every column a file source
    writes as nullable, and the readers check nulls themselves.
    """
    found = {field.name: field.dataType for field in actual.fields}
    for field in expected.fields:
        if field.name not in found:
            raise JobError(
                f"{path} has no column {field.name} ({field.dataType.simpleString()} expected); "
                f"its columns: {', '.join(found) or 'none'}"
            )
        if found[field.name] != field.dataType:
            raise JobError(
                f"{path}: column {field.name} is {found[field.name].simpleString()}, "
                f"{field.dataType.simpleString()} expected"
            )


def check_write_schema(table: StructType, rows: StructType, path: str) -> None:
    """Fail naming the first column in which the rows to write and the table differ."""
    in_table = {field.name: field.dataType for field in table.fields}
    in_rows = {field.name: field.dataType for field in rows.fields}
    for name, kind in in_table.items():
        if name not in in_rows:
            raise JobError(f"the rows written to {path} lack its column {name} ({kind.simpleString()})")
        if in_rows[name] != kind:
            raise JobError(
                f"column {name} is {kind.simpleString()} in {path} "
                f"but {in_rows[name].simpleString()} in the rows written to it"
            )
    for name in in_rows:
        if name not in in_table:
            raise JobError(f"{path} has no column {name}, which the rows written to it have")


def read(
    spark: SparkSession, path: str, schema: StructType | None = None, as_of: AsOf | None = None
) -> DataFrame:
    """The table at ``path`` (at ``as_of``, else its current version), with
    the columns of ``schema`` checked and selected in its order."""
    if not is_table(spark, path):
        if storage.exists(spark, path):
            raise JobError(f"{path} is not a Delta table (no commit in _delta_log)")
        raise JobError(f"{path} does not exist")
    reader = spark.read.format(FORMAT)
    for key, value in (as_of.options() if as_of else {}).items():
        reader = reader.option(key, value)
    with delta_errors(path):
        frame = reader.load(path)
    if schema is None:
        return frame
    check_schema(frame.schema, schema, path)
    return frame.select(*schema.fieldNames())


def current_version(spark: SparkSession, path: str) -> int:
    return resolved_version(spark, path, None)


def resolved_version(spark: SparkSession, path: str, as_of: AsOf | None) -> int:
    """The version a read at ``as_of`` sees: the one named, the last one
    committed at or before the time, or the current one."""
    if as_of is not None and as_of.version is not None:
        return as_of.version
    with delta_errors(path):
        history = DeltaTable.forPath(spark, path).history().select("version", "timestamp")
        if as_of is not None and as_of.timestamp is not None:
            # An aware datetime converts exactly, whatever the local zone.
            history = history.where(F.col("timestamp") <= F.lit(as_of.timestamp))
        row = history.agg(F.max("version")).first()
    if row is None or row[0] is None:
        raise JobError(f"{path} has no version as of {as_of}")
    return int(row[0])


def check_writable(spark: SparkSession, path: str, schema: StructType, *, overwrite: bool) -> None:
    """Fail unless rows of ``schema`` can be committed to ``path``.

    A new path is always fine. With ``overwrite``, so is a table of the same
    columns, and a directory that is not a table yet (an earlier release's
    plain Parquet): the first commit makes it one, and its old files, which
    no version refers to, go at the next ``vacuum`` past the retention.
    """
    if is_table(spark, path):
        if not overwrite:
            raise JobError(f"table {path} already exists (pass --overwrite to replace its rows)")
        check_write_schema(read(spark, path).schema, schema, path)
    elif storage.exists(spark, path) and not overwrite:
        raise JobError(f"output {path} already exists (pass --overwrite to replace it)")


def write(
    frame: DataFrame,
    path: str,
    *,
    overwrite: bool,
    description: str | None = None,
) -> int:
    """Commit ``frame`` as the table's next version; returns that version.

    Without ``overwrite`` an existing table is an error. With it, the new
    version replaces the table's rows, and the columns must match the
    table's: a changed schema fails here, naming the column, before any file
    is written. ``description`` goes into the commit (``userMetadata``), where
    ``DESCRIBE HISTORY`` and delta-rs show it.
    """
    spark = frame.sparkSession
    check_writable(spark, path, frame.schema, overwrite=overwrite)
    writer = frame.write.format(FORMAT).mode("overwrite")
    if description:
        writer = writer.option("userMetadata", description)
    with delta_errors(path):
        writer.save(path)
    return current_version(spark, path)
