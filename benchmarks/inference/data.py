"""Rows and entity ids of the inference benchmarks; no import of the jobs
package, so the in-process scorer can run in the inference service's own
virtualenv (the service's onnxruntime, NumPy and redis with hiredis)."""

from __future__ import annotations

import struct

import numpy as np

ENTITIES = 2000
# The online feature layout of docs/contracts.md (jobs/online.py writes it).
POINTER_KEY = "features:current"
VERSIONS_PREFIX = "features:v:"
INPUT_NAME, OUTPUT_NAME = "features", "score"
# The inference service's binary body and answer (docs/contracts.md).
BINARY_TYPE = "application/x-dataplatform-f32"


def entity_id(i: int) -> str:
    return f"u{i:08d}"


def feature_rows(count: int, n: int, seed: int = 7) -> np.ndarray:
    """``count`` plausible vectors of the 14 features (counts, shares, rates, recency)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 200, size=(count, n)).astype(np.float64)
    rows[:, 6:11] = rng.random((count, 5)).round(4)
    rows[:, 11:13] = (rng.random((count, 2)) * 20).round(3)
    rows[:, 13] = rng.integers(0, 30 * 86400, size=count)
    return rows


def instances(count: int, names: list[str]) -> list[dict[str, float]]:
    return [dict(zip(names, map(float, row), strict=True)) for row in feature_rows(count, len(names))]


def binary_body(count: int, n: int) -> bytes:
    """The rows of ``instances`` as the binary body: rows and columns as
    little-endian uint32, then the values as little-endian float32, row-major."""
    values = feature_rows(count, n).astype("<f4")
    return struct.pack("<II", count, n) + values.tobytes()
