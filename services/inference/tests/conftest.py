"""Fixtures: a real Redis server, an S3 server (moto) and models built with the onnx helpers."""

from __future__ import annotations

import functools
import itertools
import runpy
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import boto3
import pytest
import redis
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from inference.app import create_app
from inference.settings import Settings
from inference_testkit import (
    BUCKET,
    REDIS_PASSWORD,
    Publish,
    Published,
    RedisServer,
    S3Server,
    publish_model,
)

# tools/redis_server.py at the repository root, by path: it needs only the
# standard library, and this service's environment has no repository packages.
LOCAL_REDIS = runpy.run_path(str(Path(__file__).resolve().parents[3] / "tools" / "redis_server.py"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with ExitStack() as stack:
        try:
            running = stack.enter_context(
                LOCAL_REDIS["throwaway"](tmp_path_factory.mktemp("redis"), REDIS_PASSWORD)
            )
        except (FileNotFoundError, RuntimeError) as error:
            pytest.fail(str(error))
        yield RedisServer(port=running.port, password=REDIS_PASSWORD)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-access",
        aws_secret_access_key="test-secret",
    )
    client.create_bucket(Bucket=BUCKET)
    yield S3Server(endpoint=endpoint, client=client)
    server.stop()


_names = itertools.count(1)


@pytest.fixture
def model_name() -> str:
    """A registry name of its own for each test, so tests never see each other's models."""
    return f"churn-{next(_names)}"


@pytest.fixture
def publish(s3_server: S3Server, model_name: str) -> Publish:
    return functools.partial(publish_model, s3_server.client, BUCKET, model_name)


@pytest.fixture
def secrets_dir(tmp_path: Path, redis_server: RedisServer) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    # Trailing newlines as `echo` and editors leave them; the service must strip them.
    (directory / "redis_password").write_text(redis_server.password + "\n")
    (directory / "s3_access_key").write_text("test-access\n")
    (directory / "s3_secret_key").write_text("test-secret\n")
    return directory


@pytest.fixture
def service_env(
    redis_server: RedisServer, s3_server: S3Server, secrets_dir: Path, model_name: str
) -> dict[str, str]:
    """The environment the stack gives the container, pointed at the test servers."""
    return {
        "INFERENCE_REDIS_URL": redis_server.url,
        "INFERENCE_REDIS_PASSWORD_FILE": str(secrets_dir / "redis_password"),
        "INFERENCE_S3_ENDPOINT": s3_server.endpoint,
        "INFERENCE_S3_ACCESS_KEY_FILE": str(secrets_dir / "s3_access_key"),
        "INFERENCE_S3_SECRET_KEY_FILE": str(secrets_dir / "s3_secret_key"),
        "INFERENCE_MODELS_BUCKET": BUCKET,
        "INFERENCE_MODEL_NAME": model_name,
        "INFERENCE_POLL_SECONDS": "0.05",
        "INFERENCE_MAX_BATCH": "8",
    }


@pytest.fixture
def make_settings(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    def _make(**overrides: str) -> Settings:
        for key, value in {**service_env, **overrides}.items():
            monkeypatch.setenv(key, value)
        return Settings()

    return _make


@pytest.fixture
def start_client() -> Iterator[Callable[[Settings], TestClient]]:
    """Start apps (lifespan included) and stop them at the end of the test."""
    with ExitStack() as stack:

        def _start(settings: Settings) -> TestClient:
            return stack.enter_context(TestClient(create_app(settings)))

        yield _start


@pytest.fixture
def live_model(publish: Publish) -> Published:
    """A model published under one version, live before the app starts."""
    return publish("20260101T000000Z")


@pytest.fixture
def client(
    live_model: Published,
    make_settings: Callable[..., Settings],
    start_client: Callable[[Settings], TestClient],
) -> TestClient:
    """The app with default settings, serving ``live_model``."""
    return start_client(make_settings())


@pytest.fixture
def features_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


_entities = itertools.count(1)
LIVE_VERSION = "20250301T000000Z"


@pytest.fixture
def put_entity(features_db: redis.Redis) -> Callable[..., str]:
    """Store an entity's online features the way the features job does; returns its id."""

    def _put(values: dict[str, float | str], entity_id: str | None = None) -> str:
        entity_id = entity_id or f"customer-{next(_entities)}"
        key = f"features:v:{LIVE_VERSION}:{entity_id}"
        features_db.hset(key, mapping=dict(values.items()))
        features_db.expire(key, 3600)
        features_db.set("features:current", LIVE_VERSION)
        return entity_id

    return _put
