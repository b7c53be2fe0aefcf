"""The datagen -> features -> train pipeline and what it leaves: features in Redis, the model in MinIO."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from tools.e2e_common.jobs_cli import MODEL
from tools.e2e_common.report import Report, check

ENTITY = "u00000001"
# The jobs ``run_pipeline`` submits, in its order.
PIPELINE_JOBS = ("datagen", "features", "train")


def run_pipeline(submit: Callable[..., object], rows: int) -> str:
    """Submits the three jobs with the tier's own ``submit``; returns the model version trained."""
    version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    submit("datagen", "--rows", str(rows), "--entities", "2000", "--overwrite")
    submit("features")
    submit("train", "--version", version)
    return version


def online_prefix(client: redis.Redis) -> str:
    """Key prefix of the live online features version (contract "Online features")."""
    live = client.get("features:current")
    check(live is not None, "no live online features version in Redis (features:current)")
    return f"features:v:{live.decode() if isinstance(live, bytes) else live}:"


def check_online_features(client: redis.Redis, report: Report) -> None:
    prefix = online_prefix(client)
    check(bool(client.hgetall(prefix + ENTITY)), f"no online features for {ENTITY} in Redis")
    keys = sum(1 for _ in client.scan_iter(match=prefix + "*", count=1000))
    report.add("entities in Redis", str(keys))


def latest_model(s3: Any, bucket: str) -> str:
    """The version ``LATEST`` names in the model registry."""
    return str(s3.get_object(Bucket=bucket, Key=f"{MODEL}/LATEST")["Body"].read().decode().strip())


def check_model(s3: Any, bucket: str, version: str) -> None:
    latest = latest_model(s3, bucket)
    check(latest == version, f"LATEST names {latest!r}, expected {version!r}")
    s3.head_object(Bucket=bucket, Key=f"{MODEL}/{version}/model.onnx")
