"""Model registry in S3 and the live-model holder that hot-swaps new versions.

Layout (docs/contracts.md): ``<name>/<version>/model.onnx``,
``<name>/<version>/metadata.json`` and ``<name>/LATEST`` naming the live
version, written last by the publisher.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import onnxruntime as ort
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from numpy.typing import NDArray

    from inference.metrics import Metrics

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Registry objects beyond this size are refused rather than read into memory.
MAX_MODEL_BYTES = 1 << 30
MAX_METADATA_BYTES = 1 << 20


class RegistryUnavailableError(Exception):
    """The registry could not be asked; worth retrying on the next poll."""


class InvalidModelError(Exception):
    """A published version is unusable as it stands; retrying will not help."""


class ModelMetadata(BaseModel):
    """``metadata.json`` as the training job writes it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    version: str
    feature_names: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    input_name: str = "features"
    output_name: str = "score"
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """An immutable, ready-to-run model version; swapped as a whole, never mutated."""

    metadata: ModelMetadata
    session: ort.InferenceSession
    loaded_at: datetime
    feature_index: dict[str, int] = field(repr=False)
    # Batches of at most this many rows are scored on the event loop (see
    # ``inline_rows``); larger ones in a worker thread.
    inline_rows: int = field(default=0, repr=False)
    # ``row_values(mapping)``: the feature values of one row, in input order.
    row_values: Callable[[Mapping[str, Any]], Any] = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def feature_names(self) -> list[str]:
        return self.metadata.feature_names

    def predict(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Score an ``[N, F]`` matrix whose columns follow ``feature_names``."""
        (output,) = self.session.run(
            [self.metadata.output_name], {self.metadata.input_name: features}
        )
        scores = np.asarray(output, dtype=np.float64).reshape(-1)
        if scores.shape[0] != features.shape[0]:
            raise InvalidModelError(
                f"model returned {scores.shape[0]} scores for {features.shape[0]} rows"
            )
        return scores


def _row_getter(names: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    get = itemgetter(*names)
    if len(names) == 1:
        return lambda row: (get(row),)
    return get


def build_model(metadata: ModelMetadata, model_bytes: bytes) -> LoadedModel:
    """Create an inference session and check it honours the registry contract."""
    options = ort.SessionOptions()
    # Small tabular models gain nothing from intra-op threads; requests run in
    # parallel on the worker thread pool instead, which keeps two cores busy
    # without oversubscribing them.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        # onnxruntime signals bad graphs through several pybind exception types.
        raise InvalidModelError(f"onnxruntime cannot load model.onnx: {exc}") from exc

    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name for node in session.get_outputs()}
    expected_input = inputs.get(metadata.input_name)
    if expected_input is None:
        raise InvalidModelError(
            f"model has no input {metadata.input_name!r} (inputs: {sorted(inputs)})"
        )
    if len(inputs) != 1:
        raise InvalidModelError(f"model must have exactly one input, has {sorted(inputs)}")
    if expected_input.type != "tensor(double)":
        raise InvalidModelError(
            f"input {metadata.input_name!r} is {expected_input.type}, expected tensor(double)"
        )
    shape = expected_input.shape
    n_features = len(metadata.feature_names)
    if len(shape) != 2:
        raise InvalidModelError(f"input {metadata.input_name!r} has rank {len(shape)}, expected 2")
    if isinstance(shape[1], int) and shape[1] != n_features:
        raise InvalidModelError(
            f"input {metadata.input_name!r} takes {shape[1]} columns "
            f"but metadata lists {n_features} feature names"
        )
    if metadata.output_name not in outputs:
        raise InvalidModelError(
            f"model has no output {metadata.output_name!r} (outputs: {sorted(outputs)})"
        )
    if len(set(metadata.feature_names)) != n_features:
        raise InvalidModelError("metadata feature_names contains duplicates")

    model = LoadedModel(
        metadata=metadata,
        session=session,
        loaded_at=datetime.now(UTC),
        feature_index={name: i for i, name in enumerate(metadata.feature_names)},
        row_values=_row_getter(metadata.feature_names),
    )
    # A dry run catches graphs that load but fail at execution (shape errors,
    # unsupported kernels) before they replace a working version.
    try:
        model.predict(np.zeros((2, n_features), dtype=np.float64))
    except InvalidModelError:
        raise
    except Exception as exc:
        raise InvalidModelError(f"model fails a trial run: {exc}") from exc
    return replace(model, inline_rows=inline_rows(model))


# Handing a batch to a worker thread costs a queue hand-off and two GIL
# hand-overs; under load the event loop holds the GIL and the worker waits for
# it (up to the interpreter's switch interval, 5 ms) both to start and to
# return. A model that scores a batch in less than this runs on the loop.
INLINE_SCORING_BUDGET_S = 0.0005
_PROBE_ROWS = 256


def inline_rows(model: LoadedModel) -> int:
    """The largest batch expected to score within ``INLINE_SCORING_BUDGET_S``.

    Timed on zeros at load (best of three), assuming time grows linearly
    with rows; a probe cost that includes the fixed per-call overhead makes
    the estimate err on the side of the worker thread.
    """
    probe = np.zeros((_PROBE_ROWS, len(model.feature_names)), dtype=np.float64)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        model.predict(probe)
        best = min(best, time.perf_counter() - started)
    return int(INLINE_SCORING_BUDGET_S * _PROBE_ROWS / max(best, 1e-9))


class S3ModelRegistry:
    """Reads one model's versions from the registry bucket."""

    def __init__(self, client: S3Client, bucket: str, name: str) -> None:
        self._client = client
        self.bucket = bucket
        self.name = name

    @property
    def latest_uri(self) -> str:
        return f"s3://{self.bucket}/{self.name}/LATEST"

    def _get(self, key: str, limit: int) -> bytes | None:
        """Object body, or ``None`` when the object or bucket does not exist."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchKey", "NoSuchBucket", "404"}:
                return None
            raise RegistryUnavailableError(f"s3://{self.bucket}/{key}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise RegistryUnavailableError(f"s3://{self.bucket}/{key}: {exc}") from exc
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > limit:
                raise InvalidModelError(f"s3://{self.bucket}/{key} is larger than {limit} bytes")
            return body.read()
        except BotoCoreError as exc:
            raise RegistryUnavailableError(f"s3://{self.bucket}/{key}: {exc}") from exc
        finally:
            body.close()

    def latest_version(self) -> str | None:
        raw = self._get(f"{self.name}/LATEST", limit=1024)
        if raw is None:
            return None
        version = raw.decode("utf-8", errors="replace").strip()
        if not _VERSION_RE.fullmatch(version):
            raise InvalidModelError(f"{self.latest_uri} holds an invalid version {version!r}")
        return version

    def load(self, version: str) -> LoadedModel:
        prefix = f"{self.name}/{version}"
        raw_metadata = self._get(f"{prefix}/metadata.json", limit=MAX_METADATA_BYTES)
        if raw_metadata is None:
            raise InvalidModelError(f"s3://{self.bucket}/{prefix}/metadata.json does not exist")
        try:
            metadata = ModelMetadata.model_validate(json.loads(raw_metadata))
        except (ValueError, ValidationError) as exc:
            raise InvalidModelError(f"{prefix}/metadata.json is invalid: {exc}") from exc
        if metadata.name != self.name or metadata.version != version:
            raise InvalidModelError(
                f"{prefix}/metadata.json describes {metadata.name}/{metadata.version}"
            )
        model_bytes = self._get(f"{prefix}/model.onnx", limit=MAX_MODEL_BYTES)
        if model_bytes is None:
            raise InvalidModelError(f"s3://{self.bucket}/{prefix}/model.onnx does not exist")
        return build_model(metadata, model_bytes)


class ModelManager:
    """Holds the live model and replaces it when the registry's LATEST moves.

    Readers take ``current`` once per request; replacing it is a single
    reference assignment, so requests already running finish on the version
    they started with while new ones see the new version.
    """

    def __init__(self, registry: S3ModelRegistry, metrics: Metrics) -> None:
        self._registry = registry
        self._metrics = metrics
        self._current: LoadedModel | None = None
        self._status = "no model loaded yet"
        self._nothing_published = False
        # Versions that proved unusable; skipped until LATEST names another one,
        # so a broken publish is reported once rather than on every poll.
        self._rejected: dict[str, str] = {}
        self._last_failure: str | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def status(self) -> str:
        """Why no model is served, or the outcome of the last refresh."""
        return self._status

    @property
    def nothing_published(self) -> bool:
        """The registry answered and names no model: not a fault of this pod."""
        return self._current is None and self._nothing_published

    def refresh_sync(self) -> bool:
        """Load the version LATEST names if it is not the one served. Returns True on a swap."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        try:
            version = self._registry.latest_version()
        except RegistryUnavailableError as exc:
            self._nothing_published = False
            self._fail("registry_unavailable", None, f"model registry unreachable: {exc}")
            return False
        except InvalidModelError as exc:
            self._nothing_published = False
            self._fail("invalid", None, str(exc))
            return False
        self._nothing_published = version is None
        if version is None:
            self._last_failure = None
            if self._current is None:
                waiting = f"no model published at {self._registry.latest_uri}"
                if self._status != waiting:
                    log.info("waiting for a model", extra={"latest": self._registry.latest_uri})
                self._status = waiting
            return False

        current = self._current
        if current is not None and current.version == version:
            return False
        if version in self._rejected:
            return False

        started = time.perf_counter()
        try:
            model = self._registry.load(version)
        except RegistryUnavailableError as exc:
            self._fail("registry_unavailable", version, f"model registry unreachable: {exc}")
            return False
        except InvalidModelError as exc:
            self._rejected[version] = str(exc)
            self._fail("invalid", version, f"version {version} is unusable: {exc}")
            return False

        self._current = model
        self._last_failure = None
        self._status = f"serving {model.name}/{model.version}"
        self._metrics.set_live_model(model.name, model.version, model.loaded_at.timestamp())
        log.info(
            "model loaded",
            extra={
                "model": model.name,
                "version": model.version,
                "previous_version": current.version if current else None,
                "load_seconds": round(time.perf_counter() - started, 3),
            },
        )
        return True

    def _fail(self, reason: str, version: str | None, message: str) -> None:
        repeated = message == self._last_failure
        self._last_failure = message
        if self._current is None:
            self._status = message
        # An unreadable LATEST stays unreadable until someone rewrites it:
        # count and log it once, while outages count on every attempt.
        if reason == "invalid" and repeated:
            return
        self._metrics.model_reload_failures.labels(reason=reason).inc()
        if not repeated:
            serving = self._current
            log.error(
                "model load failed",
                extra={
                    "reason": reason,
                    "version": version,
                    "error": message,
                    "serving_version": serving.version if serving else None,
                },
            )

    async def refresh(self) -> bool:
        # S3 reads and session creation block; keep them off the event loop.
        return await asyncio.to_thread(self.refresh_sync)

    async def poll_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                # The poller must outlive any surprise; the next tick retries.
                log.exception("model refresh crashed")
