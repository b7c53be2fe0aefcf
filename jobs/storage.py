"""File operations through the session's Hadoop FileSystem.

Going through the JVM keeps one S3A configuration (endpoint, credentials,
timeouts) for everything a job touches: DataFrame reads and writes as well as
the small objects written here (model files, pointers). The same calls work on
``file://`` and plain paths, which is what the tests use.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
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


def delete(spark: SparkSession, uri: str) -> None:
    with filesystem_errors("delete", uri):
        fs, path = _path(spark, uri)
        fs.delete(path, True)


def rename(spark: SparkSession, src: str, dst: str) -> None:
    with filesystem_errors("rename", src):
        fs, src_path = _path(spark, src)
        _, dst_path = _path(spark, dst)
        if not fs.rename(src_path, dst_path):
            raise JobError(f"cannot rename {src} to {dst}")


def child_names(spark: SparkSession, uri: str) -> list[str]:
    """Names of the entries directly under a directory (empty if it is missing)."""
    with filesystem_errors("list", uri):
        fs, path = _path(spark, uri)
        if not fs.exists(path):
            return []
        return sorted(str(status.getPath().getName()) for status in fs.listStatus(path))


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def split_parent(uri: str) -> tuple[str, str]:
    trimmed = uri.rstrip("/")
    parent, _, name = trimmed.rpartition("/")
    if not name or not parent:
        raise JobError(f"output {uri} must name a directory below some parent")
    return parent, name


def _files(spark: SparkSession, uri: str) -> dict[str, int]:
    """Files under a directory, recursively: path relative to it -> size."""
    with filesystem_errors("list", uri):
        fs, path = _path(spark, uri)
        if not fs.exists(path):
            return {}
        root = str(fs.makeQualified(path).toString()).rstrip("/") + "/"
        found: dict[str, int] = {}
        iterator = fs.listFiles(path, True)
        while iterator.hasNext():
            status = iterator.next()
            full = str(status.getPath().toString())
            found[full[len(root) :] if full.startswith(root) else status.getPath().getName()] = int(
                status.getLen()
            )
        return found


def _journal_uri(final: str) -> str:
    parent, name = split_parent(final)
    return join(parent, f"_{name}.publishing")


def _complete(spark: SparkSession, final: str, journal: dict[str, Any]) -> None:
    """Roll a publish forward from its journal: the staged files become
    ``final``, whatever was there before is removed. Every step can run
    again, so a publish interrupted at any point is finished by the next
    call: a file still in the staging directory has not been moved (on S3A a
    rename is a copy, then a delete of the source, so a copy at the
    destination may be partial or old and is replaced); one no longer there
    was moved."""
    staging = str(journal["staging"])
    wanted = sorted(str(name) for name in journal["files"])
    for relative in sorted(set(_files(spark, final)) - set(wanted)):
        delete(spark, join(final, relative))
    staged = _files(spark, staging)
    for relative in wanted:
        target = join(final, relative)
        if relative not in staged:
            if not exists(spark, target):
                raise JobError(f"cannot finish publishing {final}: {relative} is neither staged nor in place")
            continue
        if exists(spark, target):
            delete(spark, target)
        parent, _ = split_parent(target)
        with filesystem_errors("create", parent):
            fs, path = _path(spark, parent)
            fs.mkdirs(path)
        rename(spark, join(staging, relative), target)
    delete(spark, staging)
    delete(spark, _journal_uri(final))


def recover(spark: SparkSession, final: str) -> bool:
    """Finish a publish of ``final`` that a dead job left half-done.

    Readers call this before reading and ``publish_directory`` before
    writing, so an output whose publication was interrupted is completed
    from its journal rather than found missing. Returns True if it did.
    """
    try:
        journal_uri = _journal_uri(final)
    except JobError:
        return False  # a bucket's root: never a published directory
    text = read_text(spark, journal_uri)
    if text is None:
        return False
    try:
        journal = json.loads(text)
    except json.JSONDecodeError:
        # A journal is one object written whole, so this one is not ours.
        raise JobError(f"{journal_uri} is not a publish journal; remove it to go on") from None
    _complete(spark, final, journal)
    return True


def publish_directory(
    spark: SparkSession,
    final: str,
    write: Callable[[str], None],
    *,
    overwrite: bool,
) -> None:
    """Write a dataset next to ``final`` and move it into place when complete.

    ``write`` receives a staging path beside the destination whose name starts
    with an underscore, which Spark, Hive and pandas readers treat as hidden, so
    a partially written dataset is never read as data. A failed write removes
    its staging directory and leaves ``final`` as it was.

    Once the staging directory is complete, a journal naming it and its files
    is written, in one object: from then on the publish only rolls forward.
    The old files are removed and the new ones moved in file by file; on S3A
    each move is a copy and a delete, so this takes a while and a job can die
    in the middle. Whatever point it died at, the next reader or publisher of
    ``final`` (``recover``) finishes the move from the journal, so the output
    is never lost and never a mix once anything reads it. Readers outside the
    platform should wait for the ``_SUCCESS`` marker, as with any S3A output.
    """
    parent, name = split_parent(final)
    recover(spark, final)
    run_id = uuid.uuid4().hex[:12]
    staging = join(parent, f"_{name}.staging-{run_id}")
    if exists(spark, final) and not overwrite:
        raise JobError(f"output {final} already exists (pass --overwrite to replace it)")
    try:
        write(staging)
    except BaseException:
        with contextlib.suppress(JobError):
            delete(spark, staging)
        raise
    journal = {"staging": staging, "files": _files(spark, staging)}
    write_bytes(spark, _journal_uri(final), json.dumps(journal).encode(), overwrite=True)
    _complete(spark, final, journal)
