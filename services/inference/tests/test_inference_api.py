"""The HTTP API against a real Redis and an S3 registry."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inference.settings import Settings
from inference_testkit import FEATURES, Publish, Published, free_port, metric_value, onnx_model

StartClient = Callable[[Settings], TestClient]
MakeSettings = Callable[..., Settings]
PutEntity = Callable[..., str]

ROW = {"events_7d": 12.0, "spend_30d": 93.5, "tenure_days": 400.0}


def row_vector(row: dict[str, float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray([[row[name] for name in FEATURES]], dtype=np.float64)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_loads_latest_model_at_start(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient
) -> None:
    publish("20260101T000000Z", latest=False)
    live = publish("20260102T000000Z")
    client = start_client(make_settings())

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "model": {"name": live.name, "version": live.version},
        "feature_store": "ok",
    }

    info = client.get("/v1/models").json()
    assert info["name"] == live.name
    assert info["version"] == "20260102T000000Z"
    assert info["feature_names"] == FEATURES
    assert info["metrics"] == {"auc": 0.81}
    assert info["loaded_at"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_predict_single_entity(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient, put_entity: PutEntity
) -> None:
    model = publish("20260101T000000Z")
    client = start_client(make_settings())
    # Redis stores decimal strings; extra fields beyond the model's inputs are ignored.
    entity = put_entity({**{k: str(v) for k, v in ROW.items()}, "country_code": "7"})

    response = client.post("/v1/predict", json={"entity_id": entity})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": model.name, "version": model.version}
    assert [p["entity_id"] for p in body["predictions"]] == [entity]
    assert body["predictions"][0]["score"] == pytest.approx(model.expected(row_vector(ROW))[0])


def test_predict_entity_batch_keeps_request_order(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient, put_entity: PutEntity
) -> None:
    model = publish("20260101T000000Z")
    client = start_client(make_settings())
    rows = [{name: float(i * 3 + j) for j, name in enumerate(FEATURES)} for i in range(5)]
    ids = [put_entity(row) for row in rows]
    requested = [ids[3], ids[0], ids[4], ids[0]]

    response = client.post("/v1/predict", json={"entity_ids": requested})

    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["entity_id"] for p in predictions] == requested
    expected = model.expected(np.vstack([row_vector(rows[i]) for i in (3, 0, 4, 0)]))
    assert [p["score"] for p in predictions] == pytest.approx(expected.tolist())


def test_predict_inline_single_and_batch(client: TestClient, live_model: Published) -> None:
    model = live_model
    single = client.post("/v1/predict", json={"features": ROW})
    assert single.status_code == 200, single.text
    assert single.json()["predictions"] == [
        {"score": pytest.approx(model.expected(row_vector(ROW))[0])}
    ]

    other = {"events_7d": 0, "spend_30d": -3.25, "tenure_days": 1e3}
    batch = client.post("/v1/predict", json={"instances": [ROW, other]})
    assert batch.status_code == 200, batch.text
    expected = model.expected(np.vstack([row_vector(ROW), row_vector(other)]))
    assert [p["score"] for p in batch.json()["predictions"]] == pytest.approx(expected.tolist())
    assert all("entity_id" not in p for p in batch.json()["predictions"])


def test_unknown_entity_is_404_with_its_id(client: TestClient, put_entity: PutEntity) -> None:
    response = client.post("/v1/predict", json={"entity_id": "nobody-42"})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_entity"
    assert response.json()["entity_ids"] == ["nobody-42"]
    assert "nobody-42" in response.json()["message"]

    known = put_entity(ROW)
    batch = client.post("/v1/predict", json={"entity_ids": [known, "ghost-1", "ghost-2"]})
    assert batch.status_code == 404
    assert batch.json()["entity_ids"] == ["ghost-1", "ghost-2"]


def test_entity_with_incomplete_features_is_rejected(
    client: TestClient, put_entity: PutEntity
) -> None:
    partial = put_entity({"events_7d": 1, "spend_30d": 2})
    response = client.post("/v1/predict", json={"entity_id": partial})
    assert response.status_code == 422
    assert response.json()["error"] == "incomplete_entity_features"
    assert response.json()["entities"] == [
        {"entity_id": partial, "missing": ["tenure_days"], "invalid": []}
    ]

    garbled = put_entity({**ROW, "spend_30d": "n/a"})
    response = client.post("/v1/predict", json={"entity_id": garbled})
    assert response.status_code == 422
    assert response.json()["entities"][0]["invalid"] == ["spend_30d"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"features": {**ROW, "spend_30d": "93.5"}}, id="number-as-string"),
        pytest.param({"features": {**ROW, "spend_30d": True}}, id="boolean"),
        pytest.param({"features": {**ROW, "spend_30d": None}}, id="null"),
        pytest.param({"features": {**ROW, "spend_30d": [1]}}, id="list"),
        pytest.param({"features": [1, 2, 3]}, id="features-not-object"),
        pytest.param({"entity_id": 42}, id="entity-id-number"),
        pytest.param({"entity_id": ""}, id="entity-id-empty"),
        pytest.param({"entity_ids": []}, id="empty-batch"),
        pytest.param({"instances": [ROW, "x"]}, id="instance-not-object"),
        pytest.param({"features": {}}, id="no-features"),
    ],
)
def test_wrong_types_are_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert payload["message"]
    assert payload["details"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"entity_id": "a", "features": {"x": 1}}', id="two-shapes"),
        pytest.param(b'{"entityid": "a"}', id="misspelt-key"),
    ],
)
def test_bodies_of_no_known_shape_are_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "exactly one of the keys" in response.json()["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_422(client: TestClient, literal: str) -> None:
    raw = f'{{"features": {{"events_7d": {literal}, "spend_30d": 1, "tenure_days": 2}}}}'
    response = client.post(
        "/v1/predict", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == ["body", "features", "events_7d"]
    assert response.json()["message"].startswith("features.events_7d: ")


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", content=b'{"features": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_missing_and_unknown_features_are_422(client: TestClient) -> None:
    missing = client.post("/v1/predict", json={"features": {"events_7d": 1, "spend_30d": 2}})
    assert missing.status_code == 422
    assert missing.json()["error"] == "feature_mismatch"
    assert missing.json()["rows"] == [{"index": 0, "missing": ["tenure_days"], "unknown": []}]
    assert "tenure_days" in missing.json()["message"]
    assert missing.json()["expected"] == FEATURES

    extra = client.post("/v1/predict", json={"instances": [ROW, {**ROW, "zodiac": 3}]})
    assert extra.status_code == 422
    assert extra.json()["rows"] == [{"index": 1, "missing": [], "unknown": ["zodiac"]}]
    assert "instance 1" in extra.json()["message"]


def test_scores_the_model_cannot_compute_are_422(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient
) -> None:
    # A model that is only defined for part of the input space: log(x @ W + b).
    publish(
        "20260101T000000Z",
        model_bytes=onnx_model((1.0, 0.0, 0.0), 0.0, activation="Log"),
    )
    client = start_client(make_settings())
    outside = {**ROW, "events_7d": -5.0}
    response = client.post("/v1/predict", json={"instances": [ROW, outside]})
    assert response.status_code == 422
    assert response.json()["error"] == "non_finite_score"
    assert response.json()["rows"] == [1]


@pytest.mark.parametrize("key", ["entity_ids", "instances"])
def test_oversized_batch_is_413(client: TestClient, key: str) -> None:
    items: list[Any] = [f"id-{i}" for i in range(9)] if key == "entity_ids" else [ROW] * 9
    response = client.post("/v1/predict", json={key: items})
    assert response.status_code == 413
    assert response.json() == {
        "error": "batch_too_large",
        "message": "batch of 9 rows exceeds the limit of 8 (INFERENCE_MAX_BATCH)",
        "limit": 8,
        "size": 9,
    }
    at_limit = client.post("/v1/predict", json={"instances": [ROW] * 8})
    assert at_limit.status_code == 200


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong_method = client.get("/v1/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
    assert "POST" in wrong_method.headers["allow"]


def test_without_a_model_the_service_is_ready_waits_and_then_serves(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient, model_name: str
) -> None:
    client = start_client(make_settings())

    assert client.get("/healthz").status_code == 200
    # Nothing published is not this pod's fault: it is ready, and says why
    # it cannot predict yet.
    wait_until(lambda: client.get("/readyz").status_code == 200, "the registry's first answer")
    assert client.get("/readyz").json() == {
        "status": "waiting_for_model",
        "model": None,
        "feature_store": "ok",
    }
    predict = client.post("/v1/predict", json={"features": ROW})
    assert predict.status_code == 503
    assert predict.json()["error"] == "model_unavailable"
    assert f"models/{model_name}/LATEST" in predict.json()["message"]
    assert client.get("/v1/models").status_code == 503

    publish("20260101T000000Z")
    wait_until(lambda: client.get("/readyz").json().get("status") == "ready", "the published model")
    assert client.post("/v1/predict", json={"features": ROW}).status_code == 200


def test_unreachable_registry_at_start_is_not_ready(
    make_settings: MakeSettings, start_client: StartClient
) -> None:
    client = start_client(make_settings(INFERENCE_S3_ENDPOINT=f"http://127.0.0.1:{free_port()}"))
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "registry unreachable" in ready.json()["message"]


def test_redis_down_is_503_for_entities_only(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient
) -> None:
    publish("20260101T000000Z")
    client = start_client(make_settings(INFERENCE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))

    started = time.monotonic()
    response = client.post("/v1/predict", json={"entity_id": "customer-1"})
    assert response.status_code == 503
    assert response.json()["error"] == "feature_store_unavailable"
    assert time.monotonic() - started < 5, "a Redis outage must fail fast"
    batch = client.post("/v1/predict", json={"entity_ids": ["a", "b"]})
    assert batch.status_code == 503

    # Still ready: every pod shares the one Redis, and inline features do not need it.
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["feature_store"] == "unreachable: ConnectionError"
    assert client.post("/v1/predict", json={"features": ROW}).status_code == 200


def test_wrong_redis_password_is_503(
    publish: Publish,
    make_settings: MakeSettings,
    start_client: StartClient,
    tmp_path: Any,
) -> None:
    publish("20260101T000000Z")
    wrong = tmp_path / "wrong_password"
    wrong.write_text("not-the-password\n")
    client = start_client(make_settings(INFERENCE_REDIS_PASSWORD_FILE=str(wrong)))
    response = client.post("/v1/predict", json={"entity_id": "customer-1"})
    assert response.status_code == 503
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["feature_store"].startswith("unreachable: ")


def test_metrics_report_traffic_and_model(client: TestClient, put_entity: PutEntity) -> None:
    entity = put_entity(ROW)
    assert client.post("/v1/predict", json={"entity_ids": [entity, entity]}).status_code == 200
    assert client.post("/v1/predict", json={"features": ROW}).status_code == 200
    assert client.post("/v1/predict", json={"entity_id": "ghost"}).status_code == 404
    assert client.post("/v1/predict", json={"features": {"x": "y"}}).status_code == 422

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric_value(text, "inference_predictions_total", {"source": "entity"}) == 2
    assert metric_value(text, "inference_predictions_total", {"source": "inline"}) == 1
    assert metric_value(text, "inference_predict_duration_seconds_count", {"source": "entity"}) == 1
    assert metric_value(text, "inference_errors_total", {"kind": "unknown_entity"}) == 1
    assert metric_value(text, "inference_errors_total", {"kind": "invalid_request"}) == 1
    info = client.get("/v1/models").json()
    assert (
        metric_value(
            text, "inference_model_info", {"name": info["name"], "version": info["version"]}
        )
        == 1
    )
    assert metric_value(text, "inference_model_reloads_total") == 1
    assert math.isclose(
        metric_value(text, "inference_model_loaded_timestamp_seconds"), time.time(), abs_tol=120
    )


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-Id": "gw-0123abc"})
    assert given.headers["x-request-id"] == "gw-0123abc"
    made = client.post("/v1/predict", json={"entity_id": "ghost"})
    assert len(made.headers["x-request-id"]) == 32
    # Ids that could forge log content are replaced, not echoed.
    for hostile in ("a b", "x" * 129, "id\tinjected"):
        response = client.get("/healthz", headers={"X-Request-Id": hostile})
        assert response.headers["x-request-id"] != hostile
        assert len(response.headers["x-request-id"]) == 32
