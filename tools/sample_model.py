"""A model in the layout ``jobs/train.py`` publishes, without training one.

The logistic regression graph of ``jobs/onnx_export.py`` over
``jobs.schema.feature_names()``, with fixed coefficients: what a check or a
benchmark needs to get a prediction from a platform in seconds rather than
after the Spark pipeline. Scoring cost does not depend on the coefficients.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from jobs import onnx_export
from jobs.schema import feature_names

MODEL_NAME = "churn"
MODEL_VERSION = "20260101T000000Z"


def coefficients() -> tuple[list[float], float]:
    rng = np.random.default_rng(14)
    return [float(x) for x in rng.normal(0, 0.1, len(feature_names()))], -0.5


def model_bytes(version: str = MODEL_VERSION) -> bytes:
    weights, intercept = coefficients()
    model = onnx_export.logistic_regression_model(
        weights, intercept, feature_names=feature_names(), model_name=MODEL_NAME, version=version
    )
    return bytes(model.SerializeToString())


def objects(version: str = MODEL_VERSION) -> dict[str, bytes]:
    """The models bucket's objects for the model ``version``, by key: the
    model, its metadata and the ``LATEST`` pointer."""
    meta = {
        "name": MODEL_NAME,
        "version": version,
        "feature_names": feature_names(),
        "input_name": onnx_export.INPUT_NAME,
        "output_name": onnx_export.OUTPUT_NAME,
        "metrics": {},
    }
    prefix = f"{MODEL_NAME}/{version}"
    return {
        f"{prefix}/model.onnx": model_bytes(version),
        f"{prefix}/metadata.json": json.dumps(meta).encode(),
        f"{MODEL_NAME}/LATEST": f"{version}\n".encode(),
    }


def publish(s3: Any, bucket: str, version: str = MODEL_VERSION) -> str:
    """Writes ``objects(version)`` to ``bucket`` (which must exist) through
    the boto3 client ``s3``, the pointer last; returns the version."""
    put(s3, bucket, objects(version))
    return version


def put(s3: Any, bucket: str, found: dict[str, bytes]) -> None:
    """``found`` written in order: the ``LATEST`` pointer comes last, so a
    reader never follows it to a model not yet written."""
    for key, body in found.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


if __name__ == "__main__":
    # For an environment without onnx: the objects as JSON, base64 bodies.
    import base64
    import sys

    chosen = sys.argv[1] if len(sys.argv) > 1 else MODEL_VERSION
    print(json.dumps({key: base64.b64encode(body).decode() for key, body in objects(chosen).items()}))
