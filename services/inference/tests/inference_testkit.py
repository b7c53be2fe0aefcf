"""Helpers shared by the inference tests: ports, ONNX models, registry publishing."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import onnx
import redis
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families

FEATURES = ["events_7d", "spend_30d", "tenure_days"]
BUCKET = "models"
REDIS_PASSWORD = "redis-test-password"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RedisServer:
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, decode_responses=True
        )


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    client: Any


def onnx_model(
    weights: Sequence[float],
    bias: float,
    *,
    elem_type: int = TensorProto.DOUBLE,
    input_name: str = "features",
    activation: str = "Sigmoid",
) -> bytes:
    """Logistic regression as the training job exports it: sigmoid(features @ W + b)."""
    n = len(weights)
    np_type = helper.tensor_dtype_to_np_dtype(elem_type)
    graph = helper.make_graph(
        nodes=[
            helper.make_node("MatMul", [input_name, "W"], ["z"]),
            helper.make_node("Add", ["z", "B"], ["logit"]),
            helper.make_node(activation, ["logit"], ["p"]),
            helper.make_node("Squeeze", ["p", "axes"], ["score"]),
        ],
        name="logistic_regression",
        inputs=[helper.make_tensor_value_info(input_name, elem_type, ["N", n])],
        outputs=[helper.make_tensor_value_info("score", elem_type, ["N"])],
        initializer=[
            numpy_helper.from_array(np.asarray(weights, dtype=np_type).reshape(n, 1), "W"),
            numpy_helper.from_array(np.asarray([bias], dtype=np_type), "B"),
            numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


@dataclass(frozen=True)
class Published:
    name: str
    version: str
    weights: tuple[float, ...]
    bias: float
    feature_names: tuple[str, ...]

    def expected(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        logits = rows @ np.asarray(self.weights) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-logits)))


class Publish(Protocol):
    def __call__(
        self,
        version: str,
        *,
        weights: Sequence[float] = ...,
        bias: float = ...,
        feature_names: Sequence[str] = ...,
        model_bytes: bytes | None = ...,
        metadata: dict[str, Any] | None = ...,
        latest: bool = ...,
    ) -> Published: ...


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in (labels or {}).items()
            ):
                return float(sample.value)
    return 0.0


def publish_model(
    s3: Any,
    bucket: str,
    name: str,
    version: str,
    *,
    weights: Sequence[float] = (0.5, -0.25, 0.01),
    bias: float = -0.1,
    feature_names: Sequence[str] = FEATURES,
    model_bytes: bytes | None = None,
    metadata: dict[str, Any] | None = None,
    latest: bool = True,
) -> Published:
    """Publish a version the way the training job does: artefacts first, LATEST last."""
    prefix = f"{name}/{version}"
    meta = metadata or {
        "name": name,
        "version": version,
        "feature_names": list(feature_names),
        "input_name": "features",
        "output_name": "score",
        "metrics": {"auc": 0.81},
        "created_at": datetime.now(UTC).isoformat(),
    }
    body = model_bytes if model_bytes is not None else onnx_model(weights, bias)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/model.onnx", Body=body)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/metadata.json", Body=json.dumps(meta).encode())
    if latest:
        s3.put_object(Bucket=bucket, Key=f"{name}/LATEST", Body=f"{version}\n".encode())
    return Published(name, version, tuple(weights), bias, tuple(feature_names))
