"""The binary body of ``POST /v1/predict`` (float32 matrix with a shape header)
and the binary response, against a real Redis and an S3 registry."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import httpx2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from inference.settings import Settings
from inference_testkit import FEATURES, Publish, Published, metric_value, onnx_model

StartClient = Callable[[Settings], TestClient]
MakeSettings = Callable[..., Settings]
PutEntity = Callable[..., str]

BINARY = "application/x-dataplatform-f32"
# Values a float32 holds exactly, so the JSON and the binary body carry the
# same numbers and the model sees the same matrix.
ROWS = np.array(
    [[12.0, 93.5, 400.0], [0.0, -3.25, 1000.0], [7.0, 0.125, 30.0], [1e6, 2.5e-3, 0.0]],
    dtype=np.float32,
)


def binary_body(rows: NDArray[Any], shape: tuple[int, int] | None = None) -> bytes:
    """The documented layout: rows and columns as little-endian uint32, then
    the values as little-endian float32, row-major."""
    values = np.ascontiguousarray(rows, dtype="<f4")
    count, columns = shape if shape is not None else values.shape
    return struct.pack("<II", count, columns) + values.tobytes()


def post_binary(client: TestClient, raw: bytes, **headers: str) -> httpx2.Response:
    return client.post("/v1/predict", content=raw, headers={"content-type": BINARY, **headers})


def read_binary(raw: bytes) -> NDArray[np.float32]:
    count, columns = struct.unpack_from("<II", raw)
    assert columns == 1
    assert len(raw) == 8 + 4 * count
    return np.frombuffer(raw, dtype="<f4", offset=8)


def as_instances(rows: NDArray[Any]) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]


def test_binary_body_scores_as_the_json_body(client: TestClient, live_model: Published) -> None:
    by_json = client.post("/v1/predict", json={"instances": as_instances(ROWS)})
    by_binary = post_binary(client, binary_body(ROWS))

    assert by_binary.status_code == 200, by_binary.text
    assert by_binary.headers["content-type"] == "application/json"
    assert by_binary.json() == by_json.json()
    scores = [p["score"] for p in by_binary.json()["predictions"]]
    assert scores == pytest.approx(live_model.expected(ROWS.astype(np.float64)).tolist())

    single = post_binary(client, binary_body(ROWS[:1]))
    assert (
        single.json() == client.post("/v1/predict", json={"features": as_instances(ROWS)[0]}).json()
    )


@pytest.mark.parametrize(
    "content_type",
    [BINARY, "Application/X-Dataplatform-F32", f"{BINARY}; charset=binary", f" {BINARY} "],
)
def test_the_content_type_chooses_the_binary_parser(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/v1/predict", content=binary_body(ROWS), headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/json", None])
def test_other_content_types_are_read_as_json(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/predict", content=binary_body(ROWS), headers=headers)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert response.json()["details"][0]["type"] == "json_invalid"


def test_binary_response_when_accepted(client: TestClient, live_model: Published) -> None:
    by_json = client.post("/v1/predict", json={"instances": as_instances(ROWS)}).json()
    json_scores = np.array([p["score"] for p in by_json["predictions"]])

    for accept in (BINARY, f"application/json;q=0.5, {BINARY}", f"{BINARY};q=0.1"):
        response = post_binary(client, binary_body(ROWS), accept=accept)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == BINARY
        assert response.headers["x-model-name"] == live_model.name
        assert response.headers["x-model-version"] == live_model.version
        np.testing.assert_array_equal(read_binary(response.content), json_scores.astype("<f4"))

    # A JSON body may ask for binary scores too.
    from_json = client.post(
        "/v1/predict", json={"instances": as_instances(ROWS)}, headers={"accept": BINARY}
    )
    assert from_json.headers["content-type"] == BINARY
    np.testing.assert_array_equal(read_binary(from_json.content), json_scores.astype("<f4"))

    for accept in ("application/json", "*/*", f"{BINARY};q=0", f"{BINARY}x"):
        response = post_binary(client, binary_body(ROWS), accept=accept)
        assert response.headers["content-type"] == "application/json", accept


def test_entity_lookups_can_answer_in_binary(
    client: TestClient, live_model: Published, put_entity: PutEntity
) -> None:
    ids = [put_entity(row) for row in as_instances(ROWS)]
    response = client.post("/v1/predict", json={"entity_ids": ids}, headers={"accept": BINARY})
    assert response.status_code == 200, response.text
    expected = live_model.expected(ROWS.astype(np.float64)).astype("<f4")
    np.testing.assert_allclose(read_binary(response.content), expected, rtol=1e-6)


def test_declared_feature_names_are_checked(client: TestClient) -> None:
    raw = binary_body(ROWS)
    assert post_binary(client, raw, **{"x-feature-names": ",".join(FEATURES)}).status_code == 200
    spaced = ", ".join(FEATURES)
    assert post_binary(client, raw, **{"x-feature-names": spaced}).status_code == 200

    swapped = [FEATURES[1], FEATURES[0], FEATURES[2]]
    response = post_binary(client, raw, **{"x-feature-names": ",".join(swapped)})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "feature_mismatch"
    assert body["expected"] == FEATURES
    assert f"column 0 {FEATURES[1]!r}, not {FEATURES[0]!r}" in body["message"]

    fewer = post_binary(client, raw, **{"x-feature-names": ",".join(FEATURES[:2])})
    assert fewer.status_code == 422
    assert "names 2 features" in fewer.json()["message"]


HEADER_ONLY = struct.pack("<II", 1, 3)


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        pytest.param(b"", "binary_header", "shorter than its 8-byte shape header", id="empty"),
        pytest.param(b"\x01\x00\x00\x00\x03\x00\x00", "binary_header", "7 bytes", id="7-bytes"),
        pytest.param(HEADER_ONLY, "binary_length", "body is 8 bytes", id="no-values"),
        pytest.param(binary_body(ROWS)[:-1], "binary_length", "takes 56", id="one-byte-short"),
        pytest.param(binary_body(ROWS) + b"\x00", "binary_length", "takes 56", id="trailing-byte"),
        pytest.param(
            binary_body(ROWS, shape=(3, 3)), "binary_length", "3 rows by 3 columns", id="rows-off"
        ),
        pytest.param(
            struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF) + b"\x00" * 16,
            "binary_length",
            "4294967295 rows",
            id="huge-shape",
        ),
        pytest.param(struct.pack("<II", 0, 3), "binary_shape", "0 rows", id="zero-rows"),
        pytest.param(struct.pack("<II", 2, 0), "binary_shape", "0 columns", id="zero-columns"),
    ],
)
def test_malformed_binary_bodies_are_422(
    client: TestClient, raw: bytes, kind: str, reason: str
) -> None:
    response = post_binary(client, raw)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert reason in body["message"]
    assert body["details"][0]["type"] == kind
    assert body["details"][0]["loc"] == ["body"]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_422_with_their_place(client: TestClient, value: float) -> None:
    rows = ROWS.copy()
    rows[2, 1] = value
    rows[3, 0] = value
    response = post_binary(client, binary_body(rows))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [d["loc"] for d in body["details"]] == [["body", 2, 1], ["body", 3, 0]]
    assert {d["type"] for d in body["details"]} == {"finite_number"}
    assert body["message"] == "2.1: Input should be a finite number"


@pytest.mark.parametrize("columns", [1, 2, 4, 14])
def test_a_column_count_not_the_models_is_422(client: TestClient, columns: int) -> None:
    rows = np.ones((2, columns), dtype=np.float32)
    response = post_binary(client, binary_body(rows))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "feature_mismatch"
    assert body["columns"] == columns
    assert body["expected"] == FEATURES
    assert body["message"].startswith(f"body has {columns} columns; model ")


def test_more_rows_than_the_batch_limit_is_413(client: TestClient) -> None:
    nine = np.ones((9, len(FEATURES)), dtype=np.float32)
    response = post_binary(client, binary_body(nine))
    assert response.status_code == 413
    assert response.json() == {
        "error": "batch_too_large",
        "message": "batch of 9 rows exceeds the limit of 8 (INFERENCE_MAX_BATCH)",
        "limit": 8,
        "size": 9,
    }
    assert post_binary(client, binary_body(nine[:8])).status_code == 200


def test_without_a_model_binary_bodies_get_503(
    make_settings: MakeSettings, start_client: StartClient
) -> None:
    client = start_client(make_settings())
    response = post_binary(client, binary_body(ROWS))
    assert response.status_code == 503
    assert response.json()["error"] == "model_unavailable"


def test_scores_out_of_float32_range_are_422_in_binary_only(
    publish: Publish, make_settings: MakeSettings, start_client: StartClient
) -> None:
    # x @ W + b with no squashing: 1e10 * 1e30 is finite as a double only.
    publish(
        "20260101T000000Z",
        model_bytes=onnx_model((1e30, 0.0, 0.0), 0.0, activation="Identity"),
    )
    client = start_client(make_settings())
    rows = np.array([[1.0, 0.0, 0.0], [1e10, 0.0, 0.0]], dtype=np.float32)

    as_json = post_binary(client, binary_body(rows))
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["predictions"][1]["score"] == pytest.approx(1e40)

    as_binary = post_binary(client, binary_body(rows), accept=BINARY)
    assert as_binary.status_code == 422
    assert as_binary.json()["error"] == "non_finite_score"
    assert as_binary.json()["rows"] == [1]


def test_binary_requests_count_as_inline(client: TestClient) -> None:
    assert post_binary(client, binary_body(ROWS)).status_code == 200
    assert post_binary(client, b"").status_code == 422
    text = client.get("/metrics").text
    assert metric_value(text, "inference_predictions_total", {"source": "inline"}) == len(ROWS)
    assert (
        metric_value(
            text, "inference_predict_requests_total", {"source": "inline", "status": "200"}
        )
        == 1
    )
    assert metric_value(text, "inference_errors_total", {"kind": "invalid_request"}) == 1


@st.composite
def near_binary_bodies(draw: st.DrawFn) -> bytes:
    """Shape headers with values that fit them or miss by a few bytes; any
    float32 bit pattern, NaN and infinities included."""
    rows, columns = draw(st.integers(0, 10)), draw(st.integers(0, 5))
    values = draw(st.binary(min_size=4 * rows * columns, max_size=4 * rows * columns))
    cut = draw(st.integers(-5, 5))
    raw = struct.pack("<II", rows, columns) + values + b"\x00" * max(cut, 0)
    return raw[: len(raw) + cut] if cut < 0 else raw


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=st.one_of(near_binary_bodies(), st.binary(max_size=64)))
def test_no_binary_body_gets_a_server_error(client: TestClient, raw: bytes) -> None:
    response = post_binary(client, raw)
    assert response.status_code in {200, 413, 422}, response.text
    body = response.json()
    if response.status_code == 200:
        assert len(body["predictions"]) == struct.unpack_from("<I", raw)[0]
    else:
        assert body["error"] in {"invalid_request", "batch_too_large", "feature_mismatch"}
        assert body["message"]
