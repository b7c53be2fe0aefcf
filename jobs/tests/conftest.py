"""Shared fixtures: one local SparkSession, a real Redis server, small datasets."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from pyspark.sql import SparkSession
from tools import redis_server as redis_server_helper

from jobs import datagen
from jobs.config import RedisSettings, Settings
from jobs.definitions import JOBS
from jobs.session import build_session
from jobs.uploads import free_port

START = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_session(
        "jobs-tests",
        Settings(),
        master="local[2]",
        extra_conf={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "1g",
        },
    )
    yield session
    session.stop()


def run_job(spark: SparkSession, name: str, argv: Sequence[str], settings: Settings | None = None) -> None:
    """Run a job the way the CLI does, on the shared session."""
    job = JOBS[name]
    args: argparse.Namespace = job.parser().parse_args(list(argv))
    job.run(spark, settings or Settings(), args)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory ahead of PATH, for stand-ins of the tools submit runs."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def fake_tool(directory: Path, name: str, body: str) -> None:
    """An executable Python script ``name`` in ``directory``."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@dataclass(frozen=True)
class RedisServer:
    settings: RedisSettings

    def client(self) -> redis.Redis:
        return redis.Redis(
            host=self.settings.host,
            port=self.settings.port,
            password=self.settings.password,
            decode_responses=True,
        )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    password = "test-password-" + str(free_port())
    try:
        with redis_server_helper.throwaway(tmp_path_factory.mktemp("redis"), password) as running:
            yield RedisServer(RedisSettings(host="127.0.0.1", port=running.port, password=password))
    except FileNotFoundError as missing:
        pytest.fail(f"{missing} (apt-get install -y redis-server)")


@pytest.fixture
def redis_flushed(redis_server: RedisServer) -> RedisServer:
    redis_server.client().flushall()
    return redis_server


@dataclass(frozen=True)
class Dataset:
    events: str
    labels: str
    rows: int
    entities: int


@pytest.fixture(scope="session")
def dataset(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Synthetic events large enough to learn from, small enough to be quick."""
    base: Path = tmp_path_factory.mktemp("dataset")
    rows, entities = 60_000, 1_500
    events, labels = str(base / "events"), str(base / "labels")
    run_job(
        spark,
        "datagen",
        [
            "--rows",
            str(rows),
            "--entities",
            str(entities),
            "--start",
            START.isoformat(),
            "--days",
            "14",
            "--seed",
            "11",
            "--output",
            events,
            "--labels-output",
            labels,
        ],
    )
    return Dataset(events, labels, rows, entities)


def generate(
    spark: SparkSession, rows: int, entities: int, seed: int = 3, partitions: int = 2
) -> list[tuple[Any, ...]]:
    df = datagen.generate_events(
        spark, rows=rows, entities=entities, start=START, days=3, seed=seed, partitions=partitions
    )
    return sorted(tuple(r) for r in df.collect())
