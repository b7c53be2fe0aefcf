from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import cli
from jobs.definitions import JOB_NAMES
from jobs.uploads import free_port

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_the_jobs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "jobs", "--help"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0
    for name in (*JOB_NAMES, "submit"):
        assert name in completed.stdout


def test_unreachable_object_store_stops_the_job_before_spark_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ak", "sk"):
        (tmp_path / name).write_text("value\n")
    monkeypatch.setenv("DP_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DP_S3_ACCESS_KEY_FILE", str(tmp_path / "ak"))
    monkeypatch.setenv("DP_S3_SECRET_KEY_FILE", str(tmp_path / "sk"))
    started = time.monotonic()
    assert cli.execute("datagen", ["--rows", "10"], master="local[1]") == 2
    assert time.monotonic() - started < 5
    assert "error: datagen: object store" in capsys.readouterr().err


def test_bad_secret_file_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DP_REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("DP_REDIS_PASSWORD_FILE", "/nonexistent/redis_password")
    assert cli.execute("features", ["--no-online"], master="local[1]") == 2
    assert "DP_REDIS_PASSWORD_FILE=/nonexistent/redis_password" in capsys.readouterr().err


def test_ingest_names_the_stack_or_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["ingest", str(tmp_path / "a.jsonl")])
    assert "ingest: give --stack NAME (read with pulumi) or --outputs FILE" in capsys.readouterr().err
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        '{"spark_submit": {"tier": "dev", "image": "i", "env": {}, "master_url": "spark://m:7077", '
        '"network": "n", "raw_bucket": "raw", "s3_endpoint": "http://127.0.0.1:1"}, '
        '"platform_credentials": {"s3_access_key": "a", "s3_secret_key": "b"}}'
    )
    assert cli.main(["ingest", "--outputs", str(outputs), str(tmp_path / "missing.jsonl")]) == 2
    assert f"error: not a file: {tmp_path / 'missing.jsonl'}" in capsys.readouterr().err
