from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobs.config import S3Settings, Settings, check_s3, check_tcp, read_secret_file, spark_conf
from jobs.errors import JobError
from jobs.uploads import free_port


def secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value)
    return str(path)


def test_settings_from_env(tmp_path: Path) -> None:
    env = {
        "DP_S3_ENDPOINT": "http://minio:9000",
        "DP_S3_ACCESS_KEY_FILE": secret(tmp_path, "ak", "access\n"),
        "DP_S3_SECRET_KEY_FILE": secret(tmp_path, "sk", "secret\n\n"),
        "DP_REDIS_HOST": "redis",
        "DP_REDIS_PORT": "6380",
        "DP_REDIS_PASSWORD_FILE": secret(tmp_path, "rp", "pw"),
        "DP_RAW_BUCKET": "r",
        "DP_LAKE_BUCKET": "l",
        "DP_MODELS_BUCKET": "m",
        "DP_EVENTS_BUCKET": "e",
    }
    settings = Settings.from_env(env)
    assert settings.s3 == S3Settings("http://minio:9000", "access", "secret\n")
    assert settings.redis is not None
    assert (settings.redis.host, settings.redis.port, settings.redis.password) == ("redis", 6380, "pw")
    assert settings.redis.username is None
    with_user = Settings.from_env({**env, "DP_REDIS_USERNAME": "spark"})
    assert with_user.redis is not None
    assert with_user.redis.username == "spark"
    assert (settings.buckets.raw, settings.buckets.lake, settings.buckets.models) == ("r", "l", "m")
    assert settings.bucket_uri(settings.buckets.lake, "features") == "s3a://l/features"
    assert "secret" not in repr(settings)


def test_empty_environment_configures_nothing() -> None:
    settings = Settings.from_env({})
    assert settings.s3 is None
    assert settings.redis is None
    assert settings.buckets.models == "models"
    assert not any(key.startswith("spark.hadoop.fs.s3a") for key in spark_conf(settings))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DP_S3_ENDPOINT": "http://minio:9000"}, "DP_S3_ACCESS_KEY_FILE, DP_S3_SECRET_KEY_FILE is not"),
        ({"DP_REDIS_HOST": "redis", "DP_REDIS_PORT": "x"}, "DP_REDIS_PORT must be an integer"),
        ({"DP_REDIS_HOST": "redis", "DP_REDIS_PASSWORD_FILE": "/nonexistent"}, "cannot read"),
    ],
)
def test_bad_environment(env: dict[str, str], message: str) -> None:
    with pytest.raises(JobError, match=message):
        Settings.from_env(env)


def test_empty_secret_file(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="is empty"):
        read_secret_file(secret(tmp_path, "x", "\n"), "X_FILE")


def test_s3a_conf_for_http_endpoint() -> None:
    settings = Settings(s3=S3Settings("http://minio:9000", "ak", "sk"))
    conf = spark_conf(settings)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.access.key"] == "ak"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "sk"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert "spark.eventLog.dir" not in conf


def test_s3a_conf_for_https_endpoint_with_event_logs() -> None:
    settings = Settings.from_env({})
    settings = Settings(
        s3=S3Settings("https://s3.internal", "ak", "sk"),
        buckets=type(settings.buckets)(events="spark-events"),
    )
    conf = spark_conf(settings)
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"
    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.eventLog.dir"] == "s3a://spark-events/"


def test_unreachable_object_store_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(
        JobError, match=r"object store http://127\.0\.0\.1:\d+ at 127\.0\.0\.1:\d+ is unreachable"
    ):
        check_s3(S3Settings(f"http://127.0.0.1:{free_port()}", "ak", "sk"))
    assert time.monotonic() - started < 5


def test_bad_endpoint() -> None:
    with pytest.raises(JobError, match="must be an http"):
        check_s3(S3Settings("minio:9000", "ak", "sk"))


def test_check_tcp_accepts_a_listening_port() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_tcp("127.0.0.1", server.getsockname()[1], "test service")
