"""File operations through the session's Hadoop FileSystem.

Going through the JVM keeps one S3A configuration (endpoint, credentials,
timeouts) for everything a job touches: DataFrame reads and writes as well as
the small objects written here (model files and the registry's pointer). The same calls work on
``file://`` and plain paths, which is what the tests use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from jobs.errors import JobError


def java_message(exc: BaseException) -> str:
    """The Java exception's own message rather than py4j's wrapper text."""
    if isinstance(exc, Py4JJavaError):
        return str(exc.java_exception.toString())
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextlib.contextmanager
def filesystem_errors(action: str, uri: str) -> Iterator[None]:
    try:
        yield
    except Py4JJavaError as exc:
        raise JobError(f"cannot {action} {uri}: {java_message(exc)}") from exc


def _jvm(spark: SparkSession) -> Any:
    jvm = spark.sparkContext._jvm
    if jvm is None:
        raise JobError("the SparkContext is stopped")
    return jvm


def _path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    path = _jvm(spark).org.apache.hadoop.fs.Path(uri)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return path.getFileSystem(conf), path


def exists(spark: SparkSession, uri: str) -> bool:
    """True if the path (or, for a glob, any match) exists."""
    with filesystem_errors("check", uri):
        fs, path = _path(spark, uri)
        matches = fs.globStatus(path)
        return matches is not None and len(matches) > 0


def require_input(spark: SparkSession, uri: str, what: str = "input") -> None:
    if not exists(spark, uri):
        raise JobError(f"{what} {uri} does not exist")


def read_text(spark: SparkSession, uri: str) -> str | None:
    """Contents of a small text object, or None when it does not exist."""
    with filesystem_errors("read", uri):
        fs, path = _path(spark, uri)
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            data: bytes = _jvm(spark).org.apache.hadoop.io.IOUtils.readFullyToByteArray(stream)
        finally:
            stream.close()
        return data.decode("utf-8")


def write_bytes(spark: SparkSession, uri: str, data: bytes, *, overwrite: bool = False) -> None:
    """Write a small object in one piece.

    On object stores (S3A) the object becomes visible only when the stream is
    closed, in full, so a reader sees the old content or the new one.
    """
    with filesystem_errors("write", uri):
        fs, path = _path(spark, uri)
        stream = fs.create(path, overwrite)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def move(spark: SparkSession, source: str, destination: str) -> None:
    """Move an object (on S3A: a copy, then a delete of the source)."""
    with filesystem_errors("move", source):
        fs, path = _path(spark, source)
        _, target = _path(spark, destination)
        fs.mkdirs(target.getParent())
        if not fs.rename(path, target):
            raise JobError(f"cannot move {source} to {destination}")


def make_directory(spark: SparkSession, uri: str) -> None:
    """Create a directory (on S3A: a marker object) unless it exists."""
    with filesystem_errors("create", uri):
        fs, path = _path(spark, uri)
        fs.mkdirs(path)
