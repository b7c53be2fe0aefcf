"""Property test of the published OpenAPI document: no generated request gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from inference.app import create_app
from inference.settings import Settings
from inference_testkit import BUCKET, RedisServer, S3Server, publish_model

FUZZ_MODEL = "churn-fuzz"

# The binary prediction body is bytes; sent as generated, like octet-stream.
schemathesis.serializer.alias("application/x-dataplatform-f32", "application/octet-stream")


@pytest.fixture(scope="module")
def fuzz_schema(
    redis_server: RedisServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    secrets = tmp_path_factory.mktemp("fuzz-secrets")
    (secrets / "redis").write_text(redis_server.password + "\n")
    (secrets / "access").write_text("fuzz-access\n")
    (secrets / "secret").write_text("fuzz-secret\n")
    # The model takes the features of the schema's example, and the example
    # entity exists, so the examples reach scoring and not only validation.
    features = ["events_7d", "spend_30d"]
    publish_model(
        s3_server.client,
        BUCKET,
        FUZZ_MODEL,
        "20260101T000000Z",
        weights=(0.3, -0.01),
        feature_names=features,
    )
    with redis_server.client() as db:
        db.hset("features:v:20250301T000000Z:customer-1", mapping=dict.fromkeys(features, "1.5"))
        db.set("features:current", "20250301T000000Z")

    app = create_app(
        Settings(
            redis_url=redis_server.url,
            redis_password_file=secrets / "redis",
            s3_endpoint=s3_server.endpoint,
            s3_access_key_file=secrets / "access",
            s3_secret_key_file=secrets / "secret",
            model_name=FUZZ_MODEL,
            poll_seconds=30,
            max_batch=16,
        )
    )
    # Schemathesis starts the app's lifespan on first use and keeps it for the
    # process; stop it here, while Redis and S3 are still up.
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asgi.shutdown_lifespans()


def test_no_request_gets_a_server_error(fuzz_schema: Any) -> None:
    # Driven through Hypothesis directly rather than schemathesis' pytest
    # plugin, which relies on pytest internals that changed in pytest 9.
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/predict", "GET /v1/models"}

    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
            *operation.get_strategies_from_examples(),
        )

        @given(case=strategy)
        @settings(
            max_examples=60,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error])
            # Errors are JSON objects of the documented shape, whatever the input.
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body.get("error"), str), body
                assert isinstance(body.get("message"), str), body

        check()
