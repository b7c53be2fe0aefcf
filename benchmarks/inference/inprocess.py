"""The same model scored by onnxruntime in one Python process, no HTTP.

    python -m benchmarks.inference.inprocess --model model.onnx --features a,b,... --batch 32 \
        [--seconds 5] [--source inline|entity|array|binary] [--redis-port P --redis-password PW]

Run with the inference service's virtualenv (``services/inference/.venv``),
so that onnxruntime, NumPy and redis (with hiredis) are the service's own.

What a caller embedding the model would run, with the session options of the
inference service (one intra-op and one inter-op thread):

* ``array``: ``session.run`` on a ready ``[batch, 14]`` float64 matrix;
* ``inline``: the rows as ``{feature: value}`` dicts, turned into the
  matrix, scored, and the scores turned into Python floats;
* ``entity``: the rows' hashes read from Redis with one pipelined round
  trip (after reading the live version's pointer, as the service does),
  parsed into the matrix, scored, scores to Python floats;
* ``binary``: the rows as the service's binary body (shape header, float32
  values), read with ``numpy.frombuffer``, widened to float64, scored, and
  the scores written as float32 bytes, as the binary answer carries them.

Prints one JSON object: rows per second (wall clock and per CPU-second of
this process) and per-call latency percentiles.
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import redis

from benchmarks.inference.data import (
    ENTITIES,
    INPUT_NAME,
    OUTPUT_NAME,
    POINTER_KEY,
    VERSIONS_PREFIX,
    binary_body,
    entity_id,
    feature_rows,
    instances,
)


def session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def scorer(
    model: bytes,
    names: list[str],
    source: str,
    batch: int,
    redis_port: int | None,
    redis_password: str | None,
) -> Callable[[], int]:
    sess = session(model)
    row_values = itemgetter(*names)
    inp, out = INPUT_NAME, OUTPUT_NAME

    if source == "array":
        matrix = feature_rows(batch, len(names))

        def run_array() -> int:
            (scores,) = sess.run([out], {inp: matrix})
            return len(scores)

        return run_array

    if source == "binary":
        raw = binary_body(batch, len(names))

        def run_binary() -> int:
            count, columns = struct.unpack_from("<II", raw)
            values = np.frombuffer(raw, dtype="<f4", count=count * columns, offset=8)
            matrix = values.reshape(count, columns).astype(np.float64)
            (scores,) = sess.run([out], {inp: matrix})
            return len(np.asarray(scores, dtype="<f4").tobytes()) // 4

        return run_binary

    if source == "inline":
        rows = instances(batch, names)

        def run_inline() -> int:
            matrix = np.array([row_values(row) for row in rows], dtype=np.float64)
            (scores,) = sess.run([out], {inp: matrix})
            return len([float(s) for s in scores])

        return run_inline

    client = redis.Redis(
        host="127.0.0.1", port=redis_port or 0, password=redis_password, decode_responses=True
    )
    ids = [entity_id(i % ENTITIES) for i in range(batch)]

    def run_entity() -> int:
        version = client.get(POINTER_KEY)
        prefix = f"{VERSIONS_PREFIX}{version}:"
        pipe = client.pipeline(transaction=False)
        for entity in ids:
            pipe.hgetall(prefix + entity)
        hashes = pipe.execute()
        matrix = np.array([row_values(h) for h in hashes], dtype=np.float64)
        (scores,) = sess.run([out], {inp: matrix})
        return len([float(s) for s in scores])

    return run_entity


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--features", required=True, help="feature names, comma-separated, in input order")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--source", choices=["array", "inline", "entity", "binary"], default="inline")
    parser.add_argument("--redis-port", type=int)
    parser.add_argument("--redis-password")
    args = parser.parse_args()

    names = args.features.split(",")
    call = scorer(
        args.model.read_bytes(), names, args.source, args.batch, args.redis_port, args.redis_password
    )
    warm_until = time.perf_counter() + 0.5
    while time.perf_counter() < warm_until:
        call()
    latencies: list[float] = []
    rows = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + args.seconds
    now = start
    while now < deadline:
        rows += call()
        after = time.perf_counter()
        latencies.append(after - now)
        now = after
    elapsed = now - start
    cpu = time.process_time() - cpu_start
    lat = np.array(latencies) * 1000
    print(
        json.dumps(
            {
                "rows_per_s": rows / elapsed,
                "rows_per_cpu_s": rows / cpu,
                "calls": len(latencies),
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
            }
        )
    )


if __name__ == "__main__":
    main()
