"""The binary body of ``POST /v1/predict``: a float32 matrix with its shape.

Layout (docs/contracts.md, "Prediction request bodies"): ``rows`` and
``columns`` as little-endian uint32, then ``rows * columns`` little-endian
IEEE 754 float32 values, row-major, the columns in the order of the live
model's ``feature_names``. Nothing follows the values.

The values are read with ``numpy.frombuffer``: no Python object is made per
value, which is what makes this body cheaper than JSON for large batches.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MEDIA_TYPE = "application/x-dataplatform-f32"
# Optional request header: the feature names the columns hold, comma-separated.
# Position alone decides which feature a column is, so a client that names
# them is told when the live model's features changed under it.
FEATURE_NAMES_HEADER = "x-feature-names"

_SHAPE = struct.Struct("<II")
_VALUE = np.dtype("<f4")
HEADER_BYTES = _SHAPE.size

# Error reports list at most this many non-finite values.
_MAX_REPORTED = 20


class BinaryBodyError(Exception):
    """A body that does not follow the layout; ``errors`` are shaped like
    pydantic's validation errors, located under ``body``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"])
        self.errors = errors


@dataclass(frozen=True, slots=True)
class MatrixBody:
    """A parsed binary body: the rows as the model's input, and the column
    names the client declared, if any."""

    matrix: NDArray[np.float64]
    feature_names: list[str] | None


def is_binary(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` value names the binary body (parameters ignored)."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == MEDIA_TYPE


def _error(kind: str, message: str, loc: tuple[int | str, ...] = ()) -> BinaryBodyError:
    return BinaryBodyError([{"type": kind, "loc": ("body", *loc), "msg": message}])


def parse(raw: bytes, feature_names: str | None) -> MatrixBody:
    """Check the layout and the values; what depends on the model (the
    column count and names, the batch limit) is checked by the caller."""
    if len(raw) < HEADER_BYTES:
        raise _error(
            "binary_header",
            f"body of {len(raw)} bytes is shorter than its {HEADER_BYTES}-byte shape header "
            "(rows and columns, little-endian uint32)",
        )
    rows, columns = _SHAPE.unpack_from(raw)
    if rows == 0 or columns == 0:
        raise _error("binary_shape", f"shape header gives {rows} rows of {columns} columns")
    expected = HEADER_BYTES + rows * columns * _VALUE.itemsize
    if len(raw) != expected:
        raise _error(
            "binary_length",
            f"body is {len(raw)} bytes; a shape of {rows} rows by {columns} columns "
            f"takes {expected} ({HEADER_BYTES} of header, then 4 per value)",
        )
    values = np.frombuffer(raw, dtype=_VALUE, count=rows * columns, offset=HEADER_BYTES)
    values = values.reshape(rows, columns)
    finite = np.isfinite(values)
    if not finite.all():
        # Located like the JSON body's errors, by row and then column.
        raise BinaryBodyError(
            [
                {
                    "type": "finite_number",
                    "loc": ("body", int(row), int(column)),
                    "msg": "Input should be a finite number",
                }
                for row, column in np.argwhere(~finite)[:_MAX_REPORTED]
            ]
        )
    names = None
    if feature_names is not None:
        names = [name.strip() for name in feature_names.split(",")]
    return MatrixBody(values.astype(np.float64), names)


def accepts_binary(accept: str | None) -> bool:
    """Whether an ``Accept`` value lists the binary type with a non-zero quality."""
    if accept is None or MEDIA_TYPE not in accept.lower():
        return False
    for entry in accept.split(","):
        media, _, params = entry.partition(";")
        if media.strip().lower() != MEDIA_TYPE:
            continue
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def as_values(scores: NDArray[np.float64]) -> NDArray[np.float32]:
    """Scores in the binary body's value type; beyond float32's range they
    become infinite, which the caller reports like a non-finite score."""
    with np.errstate(over="ignore"):
        return scores.astype(_VALUE)


def render(values: NDArray[np.float32]) -> bytes:
    """A binary response: the scores as one column, in the request body's layout."""
    return _SHAPE.pack(len(values), 1) + values.tobytes()
