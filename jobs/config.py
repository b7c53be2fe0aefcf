"""Settings from the environment the stack passes to Spark containers and pods.

The names and meanings are fixed by the "Jobs' environment" contract: every
credential arrives as a file named by a ``*_FILE`` variable. This module turns
them into Spark/Hadoop configuration (S3A is the single way the jobs reach the
object store) and Redis connection settings, and checks that both services are
reachable before a job starts heavy work.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis

from jobs.errors import JobError

CONNECT_TIMEOUT_SECONDS = 5.0


def read_secret_file(path: str, variable: str) -> str:
    """Read a secret file, stripping exactly one trailing newline (contract)."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read()
    except OSError as exc:
        raise JobError(f"cannot read {variable}={path}: {exc.strerror}") from exc
    value = value.removesuffix("\n")
    if not value:
        raise JobError(f"{variable}={path} is empty")
    return value


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise JobError(f"DP_S3_ENDPOINT must be an http(s) URL, got {self.endpoint!r}")
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def secure(self) -> bool:
        return urlsplit(self.endpoint).scheme == "https"


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int = 6379
    password: str | None = field(default=None, repr=False)
    db: int = 0
    # The Redis ACL user (DP_REDIS_USERNAME); None authenticates as "default".
    username: str | None = None


@dataclass(frozen=True)
class Buckets:
    raw: str = "raw"
    lake: str = "lake"
    models: str = "models"
    events: str | None = None


@dataclass(frozen=True)
class Settings:
    s3: S3Settings | None = None
    redis: RedisSettings | None = None
    buckets: Buckets = Buckets()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        s3: S3Settings | None = None
        endpoint = env.get("DP_S3_ENDPOINT", "").strip()
        if endpoint:
            missing = [v for v in ("DP_S3_ACCESS_KEY_FILE", "DP_S3_SECRET_KEY_FILE") if not env.get(v)]
            if missing:
                raise JobError(f"DP_S3_ENDPOINT is set but {', '.join(missing)} is not")
            s3 = S3Settings(
                endpoint=endpoint,
                access_key=read_secret_file(env["DP_S3_ACCESS_KEY_FILE"], "DP_S3_ACCESS_KEY_FILE"),
                secret_key=read_secret_file(env["DP_S3_SECRET_KEY_FILE"], "DP_S3_SECRET_KEY_FILE"),
                region=env.get("DP_S3_REGION", "us-east-1"),
            )
        redis_settings: RedisSettings | None = None
        host = env.get("DP_REDIS_HOST", "").strip()
        if host:
            port_text = env.get("DP_REDIS_PORT", "6379")
            try:
                port = int(port_text)
            except ValueError as exc:
                raise JobError(f"DP_REDIS_PORT must be an integer, got {port_text!r}") from exc
            password_file = env.get("DP_REDIS_PASSWORD_FILE")
            redis_settings = RedisSettings(
                host=host,
                port=port,
                password=read_secret_file(password_file, "DP_REDIS_PASSWORD_FILE") if password_file else None,
                username=env.get("DP_REDIS_USERNAME", "").strip() or None,
            )
        buckets = Buckets(
            raw=env.get("DP_RAW_BUCKET", "raw"),
            lake=env.get("DP_LAKE_BUCKET", "lake"),
            models=env.get("DP_MODELS_BUCKET", "models"),
            events=env.get("DP_EVENTS_BUCKET") or None,
        )
        return cls(s3=s3, redis=redis_settings, buckets=buckets)

    def require_s3(self) -> S3Settings:
        if self.s3 is None:
            raise JobError("this job needs the object store but DP_S3_ENDPOINT is not set")
        return self.s3

    def require_redis(self) -> RedisSettings:
        if self.redis is None:
            raise JobError("this job needs Redis but DP_REDIS_HOST is not set")
        return self.redis

    def bucket_uri(self, bucket: str, *parts: str) -> str:
        """Default location in a bucket; requires the object store to be configured."""
        self.require_s3()
        return "/".join([f"s3a://{bucket}", *parts])


def spark_conf(settings: Settings) -> dict[str, str]:
    """Spark configuration for the given settings (pure, so it can be tested).

    Credentials go into ``spark.hadoop.fs.s3a.*`` so the driver and every
    executor share one S3A configuration; Spark's default redaction pattern
    hides ``*.secret.key`` / ``*.access.key`` values in the UI and event logs.
    """
    conf: dict[str, str] = {
        # Timestamps in CSV input and reference times are UTC, independent of
        # the host's zone, so features are reproducible anywhere.
        "spark.sql.session.timeZone": "UTC",
        # Delta Lake's SQL (time travel, VACUUM, DESCRIBE HISTORY) and its
        # catalog, for the lake's tables (jobs.lake).
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Partitions for replaying a table's log into its state: Delta's 50
        # suit logs of many thousand commits; the lake's hold dozens.
        "spark.databricks.delta.snapshotPartitions": "4",
        # Let adaptive execution coalesce a cached plan's shuffle partitions
        # as it does an uncached one's: the features job caches its result
        # to write it twice (Redis, then the lake), and without this each
        # write ran 200 tasks and the lake got 200 files, whatever the size.
        "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
    }
    s3 = settings.s3
    if s3 is not None:
        prefix = "spark.hadoop.fs.s3a."
        conf |= {
            prefix + "impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            prefix + "endpoint": s3.endpoint,
            prefix + "endpoint.region": s3.region,
            prefix + "path.style.access": "true",
            prefix + "connection.ssl.enabled": "true" if s3.secure else "false",
            prefix + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            prefix + "access.key": s3.access_key,
            prefix + "secret.key": s3.secret_key,
            # Fail in seconds rather than after minutes of SDK retries when the
            # store goes away mid-job; the pre-flight check covers the start.
            prefix + "connection.establish.timeout": "5s",
            prefix + "attempts.maximum": "3",
            prefix + "retry.limit": "3",
        }
        if settings.buckets.events:
            conf |= {
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": f"s3a://{settings.buckets.events}/",
            }
    return conf


def check_tcp(host: str, port: int, what: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Fail fast with a clear message when a service does not accept connections."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise JobError(f"{what} at {host}:{port} is unreachable: {reason}") from exc


def check_s3(settings: S3Settings) -> None:
    host, port = settings.host_port
    check_tcp(host, port, f"object store {settings.endpoint}")


def redis_client(settings: RedisSettings, timeout: float = 30.0) -> redis.Redis:
    return redis.Redis(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        db=settings.db,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=timeout,
    )


def check_redis(settings: RedisSettings) -> None:
    """PING Redis with the job's credentials, so bad passwords fail up front too."""
    client = redis_client(settings, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise JobError(f"Redis at {settings.host}:{settings.port} rejected the credentials: {exc}") from exc
    except redis.RedisError as exc:
        raise JobError(f"Redis at {settings.host}:{settings.port} is unreachable: {exc}") from exc
    finally:
        client.close()
