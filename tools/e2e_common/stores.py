"""Clients of the stack's Redis (as its admin user) and MinIO, at whatever address the run reaches them."""

from __future__ import annotations

from typing import Any

import boto3  # type: ignore[import-untyped]
import redis
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]


def redis_admin(port: int, password: str) -> redis.Redis:
    """Redis as its admin user: the jobs' user may only write features."""
    return redis.Redis(host="127.0.0.1", port=port, username="admin", password=password, socket_timeout=5)


def s3_client(endpoint: str, credentials: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials["s3_access_key"],
        aws_secret_access_key=credentials["s3_secret_key"],
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
