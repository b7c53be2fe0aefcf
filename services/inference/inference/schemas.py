"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

EntityId = Annotated[
    str,
    Field(min_length=1, max_length=256, description="Entity identifier.", examples=["customer-1"]),
]
FeatureName = Annotated[str, Field(min_length=1, max_length=256)]
# Strict: "1.5" or true are type errors, not silently coerced numbers.
FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
FeatureVector = Annotated[
    dict[FeatureName, FeatureValue],
    Field(
        min_length=1,
        description="Every feature the live model takes, by name; no others.",
        examples=[{"events_7d": 12, "spend_30d": 93.5}],
    ),
]

REQUEST_KINDS = ("entity_id", "entity_ids", "features", "instances")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityPredictRequest(_Body):
    """Score one entity from its online features."""

    entity_id: EntityId


class EntityBatchPredictRequest(_Body):
    """Score several entities from their online features."""

    entity_ids: Annotated[list[EntityId], Field(min_length=1)]


class InlinePredictRequest(_Body):
    """Score one feature vector given in the request."""

    features: FeatureVector


class InlineBatchPredictRequest(_Body):
    """Score several feature vectors given in the request."""

    instances: Annotated[list[FeatureVector], Field(min_length=1)]


def _request_kind(value: Any) -> str | None:
    """Tag of the request shape: the single known key the body carries."""
    if isinstance(value, dict):
        present = [kind for kind in REQUEST_KINDS if kind in value]
        return present[0] if len(present) == 1 else None
    if isinstance(value, _Body):
        return next(iter(type(value).model_fields))
    return None


PredictRequest = Annotated[
    Annotated[EntityPredictRequest, Tag("entity_id")]
    | Annotated[EntityBatchPredictRequest, Tag("entity_ids")]
    | Annotated[InlinePredictRequest, Tag("features")]
    | Annotated[InlineBatchPredictRequest, Tag("instances")],
    Discriminator(
        _request_kind,
        custom_error_type="invalid_request_shape",
        custom_error_message=(
            "body must be a JSON object with exactly one of the keys "
            "entity_id, entity_ids, features, instances"
        ),
    ),
]


class ModelRef(BaseModel):
    name: str
    version: str


class Prediction(BaseModel):
    entity_id: str | None = Field(
        default=None, description="Present when the row was looked up by entity."
    )
    score: float = Field(description="Probability of the positive class.")


class PredictResponse(BaseModel):
    model: ModelRef
    predictions: list[Prediction] = Field(description="One per requested row, in request order.")


class ModelInfo(BaseModel):
    name: str
    version: str
    feature_names: list[str]
    input_name: str
    output_name: str
    metrics: dict[str, Any]
    created_at: datetime | None
    loaded_at: datetime


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Stable machine-readable code.", examples=["unknown_entity"])
    message: str = Field(description="What went wrong, for people.")


class HealthBody(BaseModel):
    status: Literal["ok"]


class ReadyBody(BaseModel):
    # "waiting_for_model": nothing is published yet, so there is nothing
    # another pod could serve better; predictions answer 503 until then.
    status: Literal["ready", "waiting_for_model"]
    model: ModelRef | None
    # "ok", or why the online feature store did not answer. Reported, not
    # held against readiness: inline features still score, entity lookups
    # answer 503 on their own, and every pod shares the one Redis, so taking
    # pods out of service would only turn those 200s into errors too.
    feature_store: str
