"""Publishing a directory survives a job that dies at any step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs import storage
from jobs.errors import JobError


class Died(BaseException):
    """A job killed outright: no cleanup code runs after it."""


def publish(spark: SparkSession, final: Path, rows: int, overwrite: bool = True) -> None:
    frame = spark.range(rows).repartition(3)
    storage.publish_directory(spark, str(final), lambda p: frame.write.parquet(p), overwrite=overwrite)


def ids(spark: SparkSession, final: Path) -> list[int]:
    return sorted(r.id for r in spark.read.parquet(str(final)).collect())


def leftovers(final: Path) -> list[str]:
    return sorted(p.name for p in final.parent.iterdir() if p.name != final.name)


def count_moves(spark: SparkSession, final: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    calls = {"n": 0}
    original = storage.rename

    def counting(spark_: SparkSession, src: str, dst: str) -> None:
        calls["n"] += 1
        original(spark_, src, dst)

    monkeypatch.setattr(storage, "rename", counting)
    publish(spark, final, 40)
    monkeypatch.setattr(storage, "rename", original)
    return calls["n"]


def test_a_publish_replaces_the_output_whole(spark: SparkSession, tmp_path: Path) -> None:
    final = tmp_path / "out"
    publish(spark, final, 10)
    assert ids(spark, final) == list(range(10))
    with pytest.raises(JobError, match="already exists"):
        publish(spark, final, 20, overwrite=False)
    publish(spark, final, 20)
    assert ids(spark, final) == list(range(20))
    assert leftovers(final) == []


@pytest.mark.parametrize("dies_at", ["delete", "rename-0", "rename-2", "rename-last", "journal-delete"])
def test_a_job_that_dies_between_steps_loses_nothing(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_at: str
) -> None:
    final = tmp_path / "out"
    publish(spark, final, 10)
    moves = count_moves(spark, tmp_path / "probe", monkeypatch)
    kind, _, nth = dies_at.partition("-")
    limit = {"0": 0, "2": 2, "last": moves - 1, "": 0, "delete": 0}[nth]
    calls = {"rename": 0, "delete": 0}
    originals: dict[str, Any] = {"rename": storage.rename, "delete": storage.delete}

    def dying(name: str) -> Any:
        def call(spark_: SparkSession, *args: str) -> None:
            target = args[0]
            hit = (
                (kind == "rename" and name == "rename" and calls["rename"] == limit)
                or (kind == "delete" and name == "delete" and "staging" not in target)
                or (kind == "journal" and name == "delete" and target.endswith(".publishing"))
            )
            calls[name] += 1
            if hit:
                raise Died(dies_at)
            originals[name](spark_, *args)

        return call

    monkeypatch.setattr(storage, "rename", dying("rename"))
    monkeypatch.setattr(storage, "delete", dying("delete"))
    with pytest.raises(Died):
        publish(spark, final, 30)
    monkeypatch.setattr(storage, "rename", originals["rename"])
    monkeypatch.setattr(storage, "delete", originals["delete"])

    # The next reader finishes the publish from its journal.
    assert storage.recover(spark, str(final))
    assert ids(spark, final) == list(range(30))
    assert leftovers(final) == ["probe"]
    assert not storage.recover(spark, str(final))


def test_a_job_that_dies_while_writing_leaves_the_old_output(
    spark: SparkSession, tmp_path: Path
) -> None:
    final = tmp_path / "out"
    publish(spark, final, 10)

    def dies(path: str) -> None:
        spark.range(5).write.parquet(path)
        raise Died("during the write")

    with pytest.raises(Died):
        storage.publish_directory(spark, str(final), dies, overwrite=True)
    assert not storage.recover(spark, str(final))
    assert ids(spark, final) == list(range(10))
