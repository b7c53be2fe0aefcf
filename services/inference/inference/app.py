"""HTTP API: predictions, model information, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any

import boto3
import numpy as np
from botocore.config import Config as BotoConfig
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from numpy.typing import NDArray
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference import __version__, binary_body
from inference.binary_body import BinaryBodyError, MatrixBody
from inference.features import FeatureStore, connect
from inference.metrics import Metrics
from inference.registry import LoadedModel, ModelManager, S3ModelRegistry
from inference.request_id import RequestIdMiddleware
from inference.schemas import (
    REQUEST_KINDS,
    EntityBatchPredictRequest,
    EntityPredictRequest,
    ErrorBody,
    HealthBody,
    InlinePredictRequest,
    ModelInfo,
    ModelRef,
    PredictRequest,
    PredictResponse,
    ReadyBody,
)
from inference.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# Error responses list at most this many offending ids or rows.
_MAX_REPORTED = 20


class ApiError(Exception):
    """A failure with a status, a stable code and a message safe to show the caller."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    models: ModelManager
    features: FeatureStore


# A coroutine, not a plain function: FastAPI runs plain-function
# dependencies in its thread pool, a thread hand-off on every request.
async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def _s3_client(settings: Settings) -> S3Client:
    access_key, secret_key = settings.s3_credentials()
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=access_key.get_secret_value(),
        aws_secret_access_key=secret_key.get_secret_value(),
        config=BotoConfig(
            s3={"addressing_style": "path"},
            connect_timeout=3,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content=jsonable_encoder({"error": code, "message": message, **extra}),
    )


def _public_loc(loc: Sequence[int | str]) -> list[int | str]:
    """Location of a validation error without the union tag pydantic inserts.

    A tagged union reports ``("body", "features", "features", "x")``: the first
    "features" is the tag, which repeats the key and would only confuse.
    """
    parts = list(loc)
    if (
        len(parts) >= 3
        and parts[0] == "body"
        and parts[1] in REQUEST_KINDS
        and parts[1] == parts[2]
    ):
        del parts[1]
    return parts


def _install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        metrics.errors.labels(kind=exc.code).inc()
        return _error(exc.status, exc.code, exc.message, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        metrics.errors.labels(kind="invalid_request").inc()
        details = [
            {
                "loc": _public_loc(err.get("loc", ())),
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        # "body" prefixes every location; the message reads better without it.
        where = ".".join(str(part) for part in first["loc"][1:])
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return _error(422, "invalid_request", message, details=details[:_MAX_REPORTED])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        try:
            phrase = HTTPStatus(exc.status_code).phrase
        except ValueError:
            phrase = "http error"
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        metrics.errors.labels(kind=code).inc()
        response = _error(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    # Only genuine bugs end here; client mistakes are all handled above.
    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        metrics.errors.labels(kind="internal_error").inc()
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"path": request.url.path, "method": request.method},
        )
        return _error(500, "internal_error", "internal error")


def _check_batch(size: int, limit: int) -> None:
    if size > limit:
        raise ApiError(
            413,
            "batch_too_large",
            f"batch of {size} rows exceeds the limit of {limit} (INFERENCE_MAX_BATCH)",
            limit=limit,
            size=size,
        )


def _inline_matrix(model: LoadedModel, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
    names = model.feature_names
    index = model.feature_index
    expected = index.keys()
    # Key views compare as sets, in C: the per-feature report below is only
    # built when some row does not match.
    if not all(row.keys() == expected for row in rows):
        problems: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            missing = [name for name in names if name not in row]
            unknown = sorted(name for name in row if name not in index)
            if missing or unknown:
                problems.append({"index": i, "missing": missing, "unknown": unknown})
        first = problems[0]
        parts = []
        if first["missing"]:
            parts.append(f"missing features {first['missing']}")
        if first["unknown"]:
            parts.append(f"unknown features {first['unknown']}")
        where = f"instance {first['index']}" if len(rows) > 1 else "features"
        raise ApiError(
            422,
            "feature_mismatch",
            f"{where}: {' and '.join(parts)}; model {model.name}/{model.version} expects {names}",
            expected=names,
            rows=problems[:_MAX_REPORTED],
        )
    values = model.row_values
    return np.array([values(row) for row in rows], dtype=np.float64).reshape(len(rows), len(names))


async def _entity_matrix(
    runtime: Runtime, model: LoadedModel, entity_ids: Sequence[str]
) -> NDArray[np.float64]:
    try:
        hashes = await runtime.features.fetch(entity_ids)
    except (RedisError, OSError) as exc:
        log.warning("feature store unavailable", extra={"error": repr(exc)})
        raise ApiError(
            503, "feature_store_unavailable", "online feature store is unavailable"
        ) from exc

    unknown = list(dict.fromkeys(eid for eid, h in zip(entity_ids, hashes, strict=True) if not h))
    if unknown:
        message = (
            f"no online features for entity {unknown[0]!r}"
            if len(unknown) == 1
            else f"no online features for {len(unknown)} entities, first {unknown[0]!r}"
        )
        raise ApiError(404, "unknown_entity", message, entity_ids=unknown[:_MAX_REPORTED])

    names = model.feature_names
    values = model.row_values
    try:
        # float() per value, as below, but without the per-feature loop; any
        # missing, non-numeric or non-finite value falls through to the report.
        matrix = np.array([tuple(map(float, values(h))) for h in hashes], dtype=np.float64)
        matrix = matrix.reshape(len(entity_ids), len(names))
        if np.isfinite(matrix).all():
            return matrix
    except (KeyError, ValueError):
        pass
    matrix = np.empty((len(entity_ids), len(names)), dtype=np.float64)
    problems: list[dict[str, Any]] = []
    for i, (entity_id, stored) in enumerate(zip(entity_ids, hashes, strict=True)):
        missing = [name for name in names if name not in stored]
        invalid = []
        if not missing:
            for j, name in enumerate(names):
                try:
                    value = float(stored[name])
                except ValueError:
                    value = float("nan")
                if not np.isfinite(value):
                    invalid.append(name)
                matrix[i, j] = value
        if missing or invalid:
            problems.append({"entity_id": entity_id, "missing": missing, "invalid": invalid})
    if problems:
        first = problems[0]
        detail = (
            f"lacks features {first['missing']}"
            if first["missing"]
            else f"has non-numeric features {first['invalid']}"
        )
        raise ApiError(
            422,
            "incomplete_entity_features",
            f"entity {first['entity_id']!r} {detail} needed by model {model.name}/{model.version}",
            entities=problems[:_MAX_REPORTED],
        )
    return matrix


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        404: "An entity has no online features.",
        413: "The batch is larger than INFERENCE_MAX_BATCH.",
        422: "The body is malformed or does not match the live model's features.",
        503: "No model is loaded yet, or the feature store is unreachable.",
    }.items()
}


# The body is decoded by pydantic's JSON parser (Rust), then validated, not
# by FastAPI, which decodes it with ``json``: for a batch of 256 rows that
# decoding cost more than validating and scoring together. (``validate_json``
# in one pass is slower here: the union's callable discriminator makes it
# build the Python objects anyway.) The OpenAPI document still describes the
# body.
_PREDICT_BODY: TypeAdapter[PredictRequest] = TypeAdapter(PredictRequest)
_COMPONENT_REF = "#/components/schemas/{model}"


def _predict_body_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's schema, and the component schemas it refers to."""
    schema = _PREDICT_BODY.json_schema(ref_template=_COMPONENT_REF)
    return schema, schema.pop("$defs", {})


def _parse_predict(raw: bytes) -> PredictRequest:
    # Errors are located under "body", like every other request error.
    try:
        document = from_json(raw)
    except ValueError as exc:
        error = {"type": "json_invalid", "loc": ("body",), "msg": f"invalid JSON: {exc}"}
        raise RequestValidationError([error]) from None
    try:
        return _PREDICT_BODY.validate_python(document)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _parse_binary(raw: bytes, feature_names: str | None) -> MatrixBody:
    try:
        return binary_body.parse(raw, feature_names)
    except BinaryBodyError as exc:
        raise RequestValidationError(exc.errors) from None


def _check_columns(model: LoadedModel, body: MatrixBody) -> None:
    """A binary body's columns are the model's features by position only:
    their count must match, and so must their names when the client sent them."""
    names = model.feature_names
    columns = body.matrix.shape[1]
    where = f"model {model.name}/{model.version} expects {len(names)} columns, {names}"
    if columns != len(names):
        raise ApiError(
            422,
            "feature_mismatch",
            f"body has {columns} columns; {where}",
            expected=names,
            columns=columns,
        )
    given = body.feature_names
    if given is not None and given != names:
        header = binary_body.FEATURE_NAMES_HEADER
        if len(given) != len(names):
            detail = f"{header} names {len(given)} features"
        else:
            column = next(i for i, (a, b) in enumerate(zip(given, names, strict=True)) if a != b)
            detail = f"{header} names column {column} {given[column]!r}, not {names[column]!r}"
        raise ApiError(
            422, "feature_mismatch", f"{detail}; {where}", expected=names, columns=columns
        )


router = APIRouter()


_BINARY_SCHEMA = {"type": "string", "format": "binary"}


@router.post(
    "/v1/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses={
        200: {
            "description": "Scores in request order: JSON, or with `Accept: "
            f"{binary_body.MEDIA_TYPE}` one float32 column in the binary layout.",
            "content": {binary_body.MEDIA_TYPE: {"schema": _BINARY_SCHEMA}},
        },
        **_ERROR_RESPONSES,
    },
    openapi_extra={
        "parameters": [
            {
                "name": binary_body.FEATURE_NAMES_HEADER,
                "in": "header",
                "required": False,
                "description": "Binary bodies only: the columns' feature names, "
                "comma-separated; checked against the live model's.",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _predict_body_schema()[0]},
                # docs/contracts.md: shape header, then float32 values, row-major.
                binary_body.MEDIA_TYPE: {"schema": _BINARY_SCHEMA},
            },
        },
    },
)
async def predict(request: Request, runtime: RuntimeDep) -> Response:
    """Score entities (features from Redis) or feature vectors given inline."""
    raw = await request.body()
    body: PredictRequest | MatrixBody
    if binary_body.is_binary(request.headers.get("content-type")):
        body = _parse_binary(raw, request.headers.get(binary_body.FEATURE_NAMES_HEADER))
    else:
        body = _parse_predict(raw)
    by_entity = isinstance(body, EntityPredictRequest | EntityBatchPredictRequest)
    source = "entity" if by_entity else "inline"
    binary = binary_body.accepts_binary(request.headers.get("accept"))
    status = 500
    try:
        response = await _predict(body, runtime, source, binary=binary)
    except ApiError as exc:
        status = exc.status
        raise
    else:
        status = 200
        return response
    finally:
        runtime.metrics.requests.labels(source=source, status=str(status)).inc()


async def _predict(
    body: PredictRequest | MatrixBody, runtime: Runtime, source: str, *, binary: bool
) -> Response:
    started = time.perf_counter()
    # Taken once: a model swap during this request does not affect it.
    model = runtime.models.current
    if model is None:
        raise ApiError(503, "model_unavailable", runtime.models.status)

    entity_ids: list[str] | None
    if isinstance(body, EntityPredictRequest | EntityBatchPredictRequest):
        entity_ids = [body.entity_id] if isinstance(body, EntityPredictRequest) else body.entity_ids
        _check_batch(len(entity_ids), runtime.settings.max_batch)
        matrix = await _entity_matrix(runtime, model, entity_ids)
    elif isinstance(body, MatrixBody):
        entity_ids = None
        matrix = body.matrix
        _check_batch(len(matrix), runtime.settings.max_batch)
        _check_columns(model, body)
    else:
        entity_ids = None
        rows = [body.features] if isinstance(body, InlinePredictRequest) else body.instances
        _check_batch(len(rows), runtime.settings.max_batch)
        matrix = _inline_matrix(model, rows)

    # A cheap batch is scored right here; a costly one in a worker thread
    # (onnxruntime releases the GIL there), which keeps the loop free.
    if len(matrix) <= model.inline_rows:
        scores = model.predict(matrix)
    else:
        scores = await run_in_threadpool(model.predict, matrix)
    # What is sent must be finite: for a binary response, in float32.
    values = binary_body.as_values(scores) if binary else None
    bad_rows = np.flatnonzero(~np.isfinite(scores if values is None else values)).tolist()
    if bad_rows:
        raise ApiError(
            422,
            "non_finite_score",
            f"the model produced no finite score for rows {bad_rows[:_MAX_REPORTED]}; "
            "feature values are likely outside the range it was trained on",
            rows=bad_rows[:_MAX_REPORTED],
        )

    count = len(scores)
    runtime.metrics.predictions.labels(source=source).inc(count)
    runtime.metrics.batch_size.labels(source=source).observe(count)
    runtime.metrics.latency.labels(source=source).observe(time.perf_counter() - started)
    if values is not None:
        # Scores in request order; the model they came from is in the headers.
        return Response(
            binary_body.render(values),
            media_type=binary_body.MEDIA_TYPE,
            headers={"x-model-name": model.name, "x-model-version": model.version},
        )
    return Response(_render(model, entity_ids, scores.tolist()), media_type="application/json")


def _render(model: LoadedModel, entity_ids: Sequence[str] | None, scores: list[float]) -> bytes:
    """``PredictResponse`` as JSON, written directly: building one pydantic
    object per row and validating them again costs more than scoring.

    ``repr`` of a finite float is its shortest round-trip form, a valid JSON
    number; entity ids and the model's name and version go through ``json``.
    """
    head = json.dumps({"name": model.name, "version": model.version})
    if entity_ids is None:
        rows = ",".join([f'{{"score":{score!r}}}' for score in scores])
    else:
        rows = ",".join(
            [
                f'{{"entity_id":{json.dumps(eid)},"score":{score!r}}}'
                for eid, score in zip(entity_ids, scores, strict=True)
            ]
        )
    return f'{{"model":{head},"predictions":[{rows}]}}'.encode()


@router.get("/v1/models", response_model=ModelInfo, responses={503: _ERROR_RESPONSES[503]})
async def models_info(runtime: RuntimeDep) -> ModelInfo:
    """The live model: version, input features, training metrics, load time."""
    model = runtime.models.current
    if model is None:
        raise ApiError(503, "model_unavailable", runtime.models.status)
    meta = model.metadata
    return ModelInfo(
        name=meta.name,
        version=meta.version,
        feature_names=meta.feature_names,
        input_name=meta.input_name,
        output_name=meta.output_name,
        metrics=meta.metrics,
        created_at=meta.created_at,
        loaded_at=model.loaded_at,
    )


@router.get("/healthz", response_model=HealthBody)
async def healthz() -> HealthBody:
    """Liveness: the process answers."""
    return HealthBody(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyBody,
    responses={503: {"model": ErrorBody, "description": "Not ready; reasons listed."}},
)
async def readyz(runtime: RuntimeDep) -> ReadyBody | JSONResponse:
    """Readiness: the published model is loaded (or none is published yet).
    A pod that cannot load the published model is not ready, so traffic goes
    to pods that could; with nothing published no pod could do better, and
    a first rollout must not wait for a model. Redis is reported, not
    required (see ``ReadyBody.feature_store``)."""
    model = runtime.models.current
    waiting = model is None and runtime.models.nothing_published
    if model is None and not waiting:
        reasons = [runtime.models.status]
        return _error(503, "not_ready", "; ".join(reasons), reasons=reasons)
    feature_store = "ok"
    try:
        await asyncio.wait_for(
            runtime.features.ping(), timeout=runtime.settings.redis_timeout_seconds * 2
        )
    except (RedisError, OSError, TimeoutError) as exc:
        feature_store = f"unreachable: {type(exc).__name__}"
    ref = None if model is None else ModelRef(name=model.name, version=model.version)
    return ReadyBody(
        status="waiting_for_model" if model is None else "ready", model=ref, feature_store=feature_store
    )


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def prometheus_metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    metrics.build.info({"version": __version__})

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = S3ModelRegistry(
            _s3_client(settings), settings.models_bucket, settings.model_name
        )
        models = ModelManager(registry, metrics)
        features = FeatureStore(connect(settings))
        app.state.runtime = Runtime(settings, metrics, models, features)
        # The first load is awaited so a published model is served from the
        # first request; without one the service still starts and keeps polling.
        await models.refresh()
        poller = asyncio.create_task(models.poll_forever(settings.poll_seconds))
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await features.close()

    app = FastAPI(
        title="dataplatform inference",
        version=__version__,
        summary="Scores entities with the live ONNX model from the registry.",
        lifespan=lifespan,
    )
    _install_error_handlers(app, metrics)
    app.add_middleware(RequestIdMiddleware)

    app.include_router(router)

    def openapi() -> dict[str, Any]:
        # FastAPI builds the document once and keeps it in openapi_schema.
        cached = app.openapi_schema is not None
        document = FastAPI.openapi(app)
        if not cached:
            document.setdefault("components", {}).setdefault("schemas", {}).update(
                _predict_body_schema()[1]
            )
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return app
