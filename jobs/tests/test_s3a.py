"""The whole pipeline through spark-submit and run.py against a local S3.

Needs the S3A connector, which the Spark image carries but pyspark's wheel
does not: set DP_TEST_S3A_JARS to a directory holding hadoop-aws (matching
pyspark's Hadoop, 3.4.1) and the AWS SDK bundle it depends on, e.g. the
``jars/`` directory Spark's ``spark.jars.packages`` resolver fills for
``org.apache.hadoop:hadoop-aws:3.4.1``. The S3 server is moto on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import onnxruntime as ort
import pyspark
import pytest
from moto.server import ThreadedMotoServer

from jobs.tests.conftest import RedisServer
from jobs.uploads import free_port

REPO = Path(__file__).resolve().parents[2]

JARS_DIR = os.environ.get("DP_TEST_S3A_JARS", "")
BUCKETS = ("raw", "lake", "models", "spark-events")

pytestmark = pytest.mark.skipif(
    not JARS_DIR, reason="DP_TEST_S3A_JARS (hadoop-aws + AWS SDK bundle jars) is not set"
)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-access",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    )
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "s3_access_key").write_text("test-access\n")
    (secrets / "s3_secret_key").write_text("test-secret\n")
    env = {
        "DP_S3_ENDPOINT": endpoint,
        "DP_S3_ACCESS_KEY_FILE": str(secrets / "s3_access_key"),
        "DP_S3_SECRET_KEY_FILE": str(secrets / "s3_secret_key"),
        "DP_RAW_BUCKET": "raw",
        "DP_LAKE_BUCKET": "lake",
        "DP_MODELS_BUCKET": "models",
        "DP_EVENTS_BUCKET": "spark-events",
    }
    yield client, env
    server.stop()


def spark_submit(env: dict[str, str], *args: str) -> str:
    jars = ",".join(str(p) for p in sorted(Path(JARS_DIR).glob("*.jar")))
    command = [
        str(Path(pyspark.__file__).parent / "bin" / "spark-submit"),
        "--master",
        "local[2]",
        "--jars",
        jars,
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        str(REPO / "jobs" / "run.py"),
        *args,
    ]
    full_env = {**os.environ, **env, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        command, env=full_env, capture_output=True, text=True, timeout=600, check=False
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stdout


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_pipeline_on_s3(s3: tuple[Any, dict[str, str]], redis_flushed: RedisServer, tmp_path: Path) -> None:
    client, env = s3
    password_file = tmp_path / "redis_password"
    password_file.write_text(f"{redis_flushed.settings.password}\n")
    env = {
        **env,
        "DP_REDIS_HOST": "127.0.0.1",
        "DP_REDIS_PORT": str(redis_flushed.settings.port),
        "DP_REDIS_PASSWORD_FILE": str(password_file),
    }

    spark_submit(env, "datagen", "--rows", "30000", "--entities", "600")
    raw = keys(client, "raw")
    assert "events/_SUCCESS" in raw
    assert "labels/_SUCCESS" in raw
    assert not [k for k in raw if k.startswith("_")]

    out = spark_submit(env, "features", "--version", "20250501T000000Z")
    assert "600 entities written to Redis" in out
    lake_latest = client.get_object(Bucket="lake", Key="features/LATEST")["Body"].read()
    assert lake_latest == b"20250501T000000Z"
    assert redis_flushed.client().hgetall("features:u00000007")

    spark_submit(env, "train", "--version", "20250501T000100Z", "--min-auc", "0.7")
    assert client.get_object(Bucket="models", Key="churn/LATEST")["Body"].read() == b"20250501T000100Z"
    meta = json.loads(
        client.get_object(Bucket="models", Key="churn/20250501T000100Z/metadata.json")["Body"].read()
    )
    assert meta["metrics"]["auc"] > 0.7
    model = client.get_object(Bucket="models", Key="churn/20250501T000100Z/model.onnx")["Body"].read()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "features"
    assert keys(client, "spark-events"), "event logs reach the events bucket"


def test_counts_from_s3(s3: tuple[Any, dict[str, str]]) -> None:
    client, env = s3
    client.put_object(
        Bucket="raw",
        Key="landing/events.csv",
        Body=(
            b"event_id,entity_id,event_type,event_time\n"
            b"1,u1,login,2025-03-01 00:00:00\n"
            b"2,u2,login,2025-03-01 00:00:01\n"
            b"3,u1,purchase,2025-03-01 00:00:02\n"
        ),
    )
    out = spark_submit(
        env,
        "event_counts",
        "s3a://raw/landing/events.csv",
        "--output",
        "s3a://lake/counts",
        "--format",
        "csv",
    )
    assert "login\t2" in out
    assert "purchase\t1" in out
    assert "counts/_SUCCESS" in keys(client, "lake", "counts/")
