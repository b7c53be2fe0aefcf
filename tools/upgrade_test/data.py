"""What the old release's stack holds before the update, written directly, and the check that it is intact.

No Spark job runs: objects in the raw and lake buckets, online features and
a marker key in Redis, and a model in the registry (the layout
``jobs/train.py`` publishes, with fixed coefficients) that the inference
service loads, so predictions through the gateway answer 200 with it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from dataclasses import dataclass
from typing import Any

import redis

from tools.e2e_common import gateway as scenario
from tools.e2e_common.gateway import Send
from tools.e2e_common.jobs_cli import MODEL
from tools.repo import ROOT

FEATURES = ("events_7d", "spend_30d", "tenure_days")
FEATURES_VERSION = "20260101T000000Z"
MODEL_VERSION = "20260101T000000Z"
ENTITIES = [f"u{i:08d}" for i in range(1, 21)]
MARKER_KEY = "upgrade:marker"
OBJECT_KEY = "upgrade/marker.bin"

# The ONNX graph is built by the jobs' own exporter, in the jobs' environment
# (which has onnx); it prints the serialized model.
EXPORT = """
import sys
from jobs import onnx_export
names = sys.argv[1].split(",")
weights = [0.02, 0.001, -0.003][: len(names)]
model = onnx_export.logistic_regression_model(
    weights, -0.5, feature_names=names, model_name=sys.argv[2], version=sys.argv[3]
)
sys.stdout.buffer.write(model.SerializeToString())
"""


def model_bytes() -> bytes:
    python = ROOT / "jobs" / ".venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", EXPORT, ",".join(FEATURES), MODEL, MODEL_VERSION],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return done.stdout


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Seeded:
    """What was written, to compare with what is there after the update."""

    marker: str
    blob: bytes
    model_sha256: str
    features: dict[str, dict[str, str]]


def features_of(entity: str) -> dict[str, str]:
    number = int(entity[1:])
    return {"events_7d": str(number % 9), "spend_30d": f"{number * 3.5:.2f}", "tenure_days": str(30 + number)}


def seed(client: redis.Redis, s3: Any, buckets: dict[str, str]) -> Seeded:
    marker = secrets.token_hex(16)
    blob = secrets.token_bytes(4096)
    client.set(MARKER_KEY, marker)
    features = {entity: features_of(entity) for entity in ENTITIES}
    for entity, values in features.items():
        client.hset(f"features:v:{FEATURES_VERSION}:{entity}", mapping=values)
    client.set("features:current", FEATURES_VERSION)
    for bucket in ("raw", "lake"):
        s3.put_object(Bucket=buckets[bucket], Key=OBJECT_KEY, Body=blob)
    body = model_bytes()
    meta = {
        "name": MODEL,
        "version": MODEL_VERSION,
        "feature_names": list(FEATURES),
        "input_name": "features",
        "output_name": "score",
        "metrics": {},
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    models = buckets["models"]
    s3.put_object(Bucket=models, Key=f"{MODEL}/{MODEL_VERSION}/model.onnx", Body=body)
    s3.put_object(Bucket=models, Key=f"{MODEL}/{MODEL_VERSION}/metadata.json", Body=json.dumps(meta).encode())
    s3.put_object(Bucket=models, Key=f"{MODEL}/LATEST", Body=f"{MODEL_VERSION}\n".encode())
    return Seeded(marker, blob, digest(body), features)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def problems(client: redis.Redis, s3: Any, buckets: dict[str, str], seeded: Seeded) -> list[str]:
    """What differs from what ``seed`` wrote; empty when everything is intact."""
    found = []
    if _text(client.get(MARKER_KEY)) != seeded.marker:
        found.append(f"Redis {MARKER_KEY}: {client.get(MARKER_KEY)!r}")
    if _text(client.get("features:current")) != FEATURES_VERSION:
        found.append(f"Redis features:current: {client.get('features:current')!r}")
    for entity, values in seeded.features.items():
        stored = {
            _text(k): _text(v) for k, v in client.hgetall(f"features:v:{FEATURES_VERSION}:{entity}").items()
        }
        if stored != values:
            found.append(f"Redis features of {entity}: {stored}")
    for bucket in ("raw", "lake"):
        body = s3.get_object(Bucket=buckets[bucket], Key=OBJECT_KEY)["Body"].read()
        if body != seeded.blob:
            found.append(f"{buckets[bucket]}/{OBJECT_KEY}: {len(body)} bytes, not the ones written")
    models = buckets["models"]
    latest = s3.get_object(Bucket=models, Key=f"{MODEL}/LATEST")["Body"].read().decode().strip()
    if latest != MODEL_VERSION:
        found.append(f"{models}/{MODEL}/LATEST names {latest!r}")
    body = s3.get_object(Bucket=models, Key=f"{MODEL}/{MODEL_VERSION}/model.onnx")["Body"].read()
    if digest(body) != seeded.model_sha256:
        found.append(f"{models}/{MODEL}/{MODEL_VERSION}/model.onnx changed")
    return found


def served(send: Send, key: str) -> bool:
    """A prediction for a seeded entity answers 200 with the seeded model."""
    reply = send("POST", scenario.PREDICT, scenario.entity(ENTITIES[0]), scenario.auth(key))
    return reply.status == 200 and reply.json()["model"]["version"] == MODEL_VERSION
