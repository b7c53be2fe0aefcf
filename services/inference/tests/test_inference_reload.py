"""Hot swapping of model versions while serving."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from onnx import TensorProto

from inference.app import create_app
from inference.settings import Settings
from inference_testkit import FEATURES, Publish, Published, metric_value, onnx_model

StartClient = Callable[[Settings], TestClient]
MakeSettings = Callable[..., Settings]
PutEntity = Callable[..., str]

ROWS = [
    {"events_7d": 3.0, "spend_30d": 10.0, "tenure_days": 30.0},
    {"events_7d": 0.0, "spend_30d": 250.0, "tenure_days": 900.0},
]
MATRIX = np.asarray([[row[name] for name in FEATURES] for row in ROWS])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def served_version(client: TestClient) -> str:
    response = client.post("/v1/predict", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    version: str = response.json()["model"]["version"]
    return version


@pytest.mark.anyio
async def test_hot_swap_under_load_drops_no_request(
    publish: Publish, make_settings: MakeSettings
) -> None:
    versions = {
        "20260101T000000Z": publish("20260101T000000Z", weights=(0.5, -0.25, 0.01), bias=-0.1),
    }
    app = create_app(make_settings())
    counts: dict[str, int] = {}
    failures: list[str] = []
    stop = anyio.Event()

    async def hammer(client: httpx2.AsyncClient, worker: int) -> None:
        last = ""
        while not stop.is_set():
            response = await client.post("/v1/predict", json={"instances": ROWS})
            if response.status_code != 200:
                failures.append(f"worker {worker}: {response.status_code} {response.text}")
                return
            body = response.json()
            version = body["model"]["version"]
            # The version reported must be the one whose weights produced the scores.
            expected = versions[version].expected(MATRIX)
            scores = [p["score"] for p in body["predictions"]]
            if not np.allclose(scores, expected):
                failures.append(f"worker {worker}: scores {scores} do not match {version}")
                return
            if version < last:
                failures.append(f"worker {worker}: went back from {last} to {version}")
                return
            last = version
            counts[version] = counts.get(version, 0) + 1
            # Over the in-process transport a request that Redis has no part in
            # may never suspend; a client on a socket would wait for each
            # answer, letting the poller and the other workers run.
            await anyio.lowlevel.checkpoint()

    async def until(condition: Callable[[], bool]) -> None:
        # Workers update plain counters, so sample them rather than wiring events.
        while not condition() and not failures:  # noqa: ASYNC110
            await anyio.sleep(0.01)

    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://inference") as client:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    for worker in range(4):
                        group.start_soon(hammer, client, worker)
                    await until(lambda: counts.get("20260101T000000Z", 0) >= 20)

                    def publish_v2() -> Published:
                        return publish("20260102T000000Z", weights=(-0.3, 0.02, 0.004), bias=0.2)

                    versions["20260102T000000Z"] = await anyio.to_thread.run_sync(publish_v2)
                    await until(lambda: counts.get("20260102T000000Z", 0) >= 20)
                    stop.set()

    assert failures == []
    assert counts["20260101T000000Z"] >= 20
    assert counts["20260102T000000Z"] >= 20


def _broken_variants() -> list[Any]:
    good_metadata = {
        "name": "other",
        "version": "x",
        "input_name": "features",
        "output_name": "score",
        "metrics": {},
        "created_at": "2026-01-02T00:00:00Z",
    }
    return [
        pytest.param({"model_bytes": b"\x08\x07 not a protobuf"}, id="corrupt-onnx"),
        pytest.param(
            {"model_bytes": onnx_model((0.1, 0.2, 0.3), 0.0, elem_type=TensorProto.FLOAT)},
            id="float-input",
        ),
        pytest.param({"feature_names": ["events_7d", "spend_30d"]}, id="feature-count-mismatch"),
        pytest.param(
            {"metadata": {**good_metadata, "feature_names": ["a"]}},
            id="metadata-for-another-model",
        ),
        pytest.param(
            {"metadata": {**good_metadata, "feature_names": []}},
            id="metadata-invalid",
        ),
    ]


@pytest.mark.parametrize("broken", _broken_variants())
def test_broken_version_keeps_old_one_serving(
    publish: Publish,
    make_settings: MakeSettings,
    start_client: StartClient,
    broken: dict[str, Any],
) -> None:
    publish("20260101T000000Z")
    client = start_client(make_settings())
    assert served_version(client) == "20260101T000000Z"

    publish("20260102T000000Z", **broken)

    def failures() -> float:
        text = client.get("/metrics").text
        return metric_value(text, "inference_model_reload_failures_total", {"reason": "invalid"})

    wait_until(lambda: failures() >= 1, "the failed reload to be counted")
    assert served_version(client) == "20260101T000000Z"
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/models").json()["version"] == "20260101T000000Z"
    # A rejected version is not retried on every poll.
    time.sleep(0.3)
    assert failures() == 1

    publish("20260103T000000Z")
    wait_until(lambda: served_version(client) == "20260103T000000Z", "the next good version")


def test_missing_model_file_keeps_old_one_serving(
    publish: Publish,
    make_settings: MakeSettings,
    start_client: StartClient,
    s3_server: Any,
    model_name: str,
) -> None:
    publish("20260101T000000Z")
    client = start_client(make_settings())
    publish("20260102T000000Z", latest=False)
    s3_server.client.delete_object(Bucket="models", Key=f"{model_name}/20260102T000000Z/model.onnx")
    s3_server.client.put_object(
        Bucket="models", Key=f"{model_name}/LATEST", Body=b"20260102T000000Z"
    )
    wait_until(
        lambda: (
            metric_value(
                client.get("/metrics").text,
                "inference_model_reload_failures_total",
                {"reason": "invalid"},
            )
            == 1
        ),
        "the failed reload",
    )
    assert served_version(client) == "20260101T000000Z"


def test_moving_latest_back_rolls_back(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient
) -> None:
    publish("20260101T000000Z")
    client = start_client(make_settings())
    publish("20260102T000000Z")
    wait_until(lambda: served_version(client) == "20260102T000000Z", "the new version")
    publish("20260101T000000Z")
    wait_until(lambda: served_version(client) == "20260101T000000Z", "the rollback")
    text = client.get("/metrics").text
    assert metric_value(text, "inference_model_reloads_total") == 3
    assert metric_value(text, "inference_model_info", {"version": "20260101T000000Z"}) == 1
    assert metric_value(text, "inference_model_info", {"version": "20260102T000000Z"}) == 0


@pytest.mark.anyio
async def test_request_in_flight_during_swap_finishes_on_its_version(
    publish: Publish, make_settings: MakeSettings, features_db: redis.Redis, put_entity: PutEntity
) -> None:
    old = publish("20260101T000000Z", weights=(0.5, -0.25, 0.01), bias=-0.1)
    entity = put_entity(ROWS[0])
    app = create_app(make_settings(INFERENCE_REDIS_TIMEOUT_SECONDS="10"))

    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://inference") as client:
            responses: list[httpx2.Response] = []

            async def in_flight() -> None:
                responses.append(await client.post("/v1/predict", json={"entity_id": entity}))

            async with anyio.create_task_group() as group:
                # Redis holds the lookup, after the request has taken the live
                # model, for three seconds; a pause cannot be lifted early from
                # a client because the unpause would wait too.
                features_db.client_pause(3000, all=True)
                group.start_soon(in_flight)
                await anyio.sleep(0.2)

                def publish_new() -> Published:
                    return publish("20260102T000000Z", weights=(-0.3, 0.02, 0.004), bias=0.2)

                await anyio.to_thread.run_sync(publish_new)
                with anyio.fail_after(10):
                    while app.state.runtime.models.current.version != "20260102T000000Z":  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                # The swap really happened while the request was still running.
                assert responses == []

            (response,) = responses
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model"]["version"] == old.version
            assert body["predictions"][0]["score"] == pytest.approx(old.expected(MATRIX[:1])[0])

            after = await client.post("/v1/predict", json={"entity_id": entity})
            assert after.json()["model"]["version"] == "20260102T000000Z"


def test_a_pod_that_cannot_load_the_published_model_is_not_ready_but_alive(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient
) -> None:
    publish("20260102T000000Z", model_bytes=b"\x08\x07 not a protobuf")
    client = start_client(make_settings())

    def rejected() -> bool:
        ready = client.get("/readyz")
        return ready.status_code == 503 and "20260102T000000Z" in ready.json()["message"]

    wait_until(rejected, "the unloadable version to make the pod unready")
    # Liveness is a different check: restarting would not help.
    assert client.get("/healthz").status_code == 200

    publish("20260103T000000Z")
    wait_until(lambda: client.get("/readyz").status_code == 200, "a loadable version")
    assert served_version(client) == "20260103T000000Z"
