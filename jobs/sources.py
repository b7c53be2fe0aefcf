"""Reading inputs with their declared schema, failing with clear messages, and
writing outputs as Delta tables or plain files."""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator
from functools import reduce

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs import lake, storage
from jobs.errors import JobError
from jobs.timeutil import AsOf

CSV_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"

_SCHEMA_MISMATCH_MARKERS = (
    "MALFORMED_RECORD_IN_PARSING",
    "Malformed records are detected",
    "CSV header does not conform to the schema",
    "FAILED_READ_FILE",
    "PARQUET_COLUMN_DATA_TYPE_MISMATCH",
    "Parquet column cannot be converted",
    "USER_RAISED_EXCEPTION",
)


def read_table(
    spark: SparkSession,
    path: str,
    fmt: str,
    schema: StructType,
    *,
    complete_rows: bool = True,
    as_of: AsOf | None = None,
) -> DataFrame:
    """Read ``path`` as ``fmt`` with ``schema``; the path must exist.

    A Delta table is read at ``as_of`` (default: its current version), and a
    column of the schema that it lacks or holds with another type fails the
    job naming that column. Only Delta tables have versions to travel to.
    CSV is parsed in FAILFAST mode and its header must name the schema's
    columns in order (``enforceSchema=false``), so a file with other columns or
    unparsable values fails the job instead of turning into nulls. With
    ``complete_rows=False`` the null check (see require_complete_rows) is left
    out, for a query that must read only the columns it uses.
    """
    if as_of is not None and fmt != lake.FORMAT:
        raise JobError(f"--as-of needs a Delta table; {path} is read as {fmt}")
    if fmt == lake.FORMAT:
        df = lake.read(spark, path, schema, as_of)
        return require_complete_rows(df, schema) if complete_rows else df
    storage.require_input(spark, path)
    reader = spark.read.schema(schema)
    if fmt == "csv":
        reader = (
            reader.option("header", True)
            .option("mode", "FAILFAST")
            .option("enforceSchema", False)
            .option("timestampFormat", CSV_TIMESTAMP_FORMAT)
        )
        df = reader.csv(path)
    elif fmt == "parquet":
        df = reader.parquet(path)
    else:
        raise JobError(f"unsupported input format {fmt!r}")
    return require_complete_rows(df, schema) if complete_rows else df


def require_complete_rows(df: DataFrame, schema: StructType) -> DataFrame:
    """Fail on a null in a non-nullable column instead of passing it on.

    File sources read every column as nullable, and an empty CSV field is a
    null even in FAILFAST mode. Referencing every such column also stops the
    optimizer from pruning columns out of the scan, so FAILFAST parses (and
    rejects) malformed values in columns the query itself does not use.
    """
    required = [field.name for field in schema.fields if not field.nullable]
    if not required:
        return df
    any_null = reduce(operator.or_, (F.col(name).isNull() for name in required))
    message = f"null in a non-nullable column (one of {', '.join(required)})"
    return df.where(F.when(any_null, F.raise_error(F.lit(message))).isNull())


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text


@contextlib.contextmanager
def input_errors(path: str, schema: StructType) -> Iterator[None]:
    """Turn Spark's read-time failures of an action into a JobError."""
    try:
        yield
    except (Py4JJavaError, PySparkException) as exc:
        detail = storage.java_message(exc) if isinstance(exc, Py4JJavaError) else str(exc)
        if any(marker in detail for marker in _SCHEMA_MISMATCH_MARKERS):
            expected = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields)
            raise JobError(
                f"{path} does not match the expected schema ({expected}): {_first_line(detail)}"
            ) from exc
        raise


@contextlib.contextmanager
def read_errors(path: str) -> Iterator[None]:
    """Turn a file that Spark cannot parse into a JobError naming it."""
    try:
        yield
    except (Py4JJavaError, PySparkException) as exc:
        detail = storage.java_message(exc) if isinstance(exc, Py4JJavaError) else str(exc)
        if any(marker in detail for marker in _SCHEMA_MISMATCH_MARKERS):
            raise JobError(f"cannot parse {path}: {_first_line(detail)}") from exc
        raise


def write_output(
    df: DataFrame, path: str, fmt: str, *, overwrite: bool, description: str | None = None
) -> str:
    """Write ``df`` as ``fmt``; returns what was written, for the summary.

    A Delta table gets one commit, so readers see the old rows or the new
    ones. Parquet and CSV are plain directories for other tools: Spark
    replaces them in place, and a reader during the write sees a mix.
    """
    if fmt == lake.FORMAT:
        version = lake.write(df, path, overwrite=overwrite, description=description)
        return f"{path} (Delta version {version})"
    if storage.exists(df.sparkSession, path) and not overwrite:
        raise JobError(f"output {path} already exists (pass --overwrite to replace it)")
    writer = df.write.mode("overwrite")
    if fmt == "parquet":
        writer.parquet(path)
    elif fmt == "csv":
        writer.option("header", True).option("timestampFormat", CSV_TIMESTAMP_FORMAT).csv(path)
    else:
        raise JobError(f"unsupported format {fmt!r}")
    return f"{path} ({fmt})"
