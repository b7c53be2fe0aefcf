"""Rows scored per second: the inference service against onnxruntime in-process.

    python -m benchmarks.inference.bench [--rounds 3] [--seconds 8] [--pin split|none] [--smoke]

For inline rows (``instances``), for entity lookups (``entity_ids`` →
Redis → model) and for the inline rows as the binary body with a binary
answer (``application/x-dataplatform-f32``), at batch 1, 32 and 256:
``POST /v1/predict`` on the
inference container driven by wrk (``--connections``, default 8, enough
to keep the single server process busy), against the same model scored in one
Python process by ``benchmarks.inference.inprocess`` (same rows, same
Redis). Latency at batch 1 is measured with one connection. Each round runs
every case with the variants one after the other, in alternating order, and
the tables report medians over rounds.

``--smoke`` is the short pass of ``make bench-smoke`` (``benchmarks/modes.py``):
one round of a second per run at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import modes
from benchmarks.inference import stack, wrkbody
from benchmarks.inference.data import BINARY_TYPE, binary_body
from benchmarks.loadgen import (
    NICE,
    REPO,
    Load,
    Result,
    Tools,
    container_cpu_seconds,
    exit_on_sigterm,
    install_tools,
    load_average,
    median,
    pinned,
    run_wrk,
)
from jobs.schema import feature_names
from tools import sample_model

BATCHES = (1, 32, 256)
# The JSON bodies, reported in the first three tables.
JSON_SOURCES = ("inline", "entity")
# Measured in every round and batch, the short mode's included: the JSON
# bodies, and the inline rows as the binary body, answered in binary.
SOURCES = (*JSON_SOURCES, "binary")
BINARY_HEADERS = {
    "Content-Type": BINARY_TYPE,
    "Accept": BINARY_TYPE,
    "X-Feature-Names": ",".join(feature_names()),
}

# With --pin split, the load generator and Redis share CPU 0, and the
# server under test (the container, or the in-process scorer) has CPU 1.
LAYOUTS: dict[str, dict[str, str | None]] = {
    "split": {"load": "0", "redis": "0", "inference": "1"},
    "none": {"load": None, "redis": None, "inference": None},
}


def body(source: str, batch: int) -> str | bytes:
    if source == "binary":
        return binary_body(batch, len(feature_names()))
    if source == "inline":
        return json.dumps({"instances": stack.instances(batch)})
    return json.dumps({"entity_ids": [stack.entity_id(i % stack.ENTITIES) for i in range(batch)]})


def http_run(
    tools: Tools, url: str, payload: str | bytes, c: int, seconds: float, cpus: str | None
) -> Result:
    """One wrk run; a binary body goes with its headers and asks for a binary answer."""
    if isinstance(payload, str):
        return run_wrk(tools, Load(url, payload, c, seconds, {}, cpus))
    with wrkbody.sending(payload):
        return run_wrk(tools, Load(url, "", c, seconds, BINARY_HEADERS, cpus))


@dataclass
class Measured:
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    rows_per_cpu_s: float = 0.0


# The scorer runs in the inference service's own virtualenv: the same
# onnxruntime, NumPy and redis client (with hiredis) as the service.
INFERENCE_PYTHON = REPO / "services" / "inference" / ".venv" / "bin" / "python"


def in_process(source: str, batch: int, seconds: float, serving: stack.Stack, cpus: str | None) -> Measured:
    model = serving.workdir / "model.onnx"
    if not model.exists():
        model.write_bytes(sample_model.model_bytes())
    argv = [str(INFERENCE_PYTHON), "-m", "benchmarks.inference.inprocess", "--batch", str(batch)]
    argv += ["--model", str(model), "--features", ",".join(feature_names())]
    argv += ["--seconds", str(seconds), "--source", source]
    argv += ["--redis-port", str(serving.redis_port), "--redis-password", serving.redis_password]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(pinned(cpus, argv), cwd=REPO, env=env, check=True, stdout=subprocess.PIPE, text=True)
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    return Measured(raw["rows_per_s"], raw["p50_ms"], raw["p99_ms"], raw["rows_per_cpu_s"])


def binary_report(
    http: dict[tuple[str, int], list[Measured]],
    local: dict[tuple[str, int], list[Measured]],
    latency: dict[str, list[Measured]],
    batches: list[int],
) -> list[dict[str, float]]:
    """The binary body's tables: against in-process from the same bytes, the
    ready matrix, the JSON body of the same rows, and in-process from those
    rows as dicts (the inline rows' in-process figure)."""
    print("The same rows as the binary body, answered in binary (`application/x-dataplatform-f32`):")
    print()
    print(
        "| binary body | batch | service rows/s | service rows/CPU-s | in-process rows/s from the same "
        "bytes | service / that | service / ready matrix | service / JSON service "
        "| service / in-process from dicts |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    entries = []
    for batch in batches:
        h = median([m.rows_per_s for m in http["binary", batch]])
        cpu = median([m.rows_per_cpu_s for m in http["binary", batch]])
        inproc = median([m.rows_per_s for m in local["binary", batch]])
        arr = median([m.rows_per_s for m in local["array", batch]])
        as_json = median([m.rows_per_s for m in http["inline", batch]])
        dicts = median([m.rows_per_s for m in local["inline", batch]])
        entries.append(
            {
                "batch": batch,
                "service": h,
                "service_per_cpu_s": cpu,
                "in_process": inproc,
                "in_process_array": arr,
                "json_service": as_json,
                "in_process_dicts": dicts,
            }
        )
        print(
            f"| binary | {batch} | {h:,.0f} | {cpu:,.0f} | {inproc:,.0f} | {100 * h / inproc:.1f}% "
            f"| {100 * h / arr:.1f}% | {100 * h / as_json:.1f}% | {100 * h / dicts:.1f}% |"
        )
    print()
    print("| binary body | batch 1, one connection | p50 ms | p99 ms | in-process p50 / p99 ms |")
    print("|---|---|---|---|---|")
    ms, inproc_runs = latency["binary"], local["binary", 1]
    p50, p99 = median([m.p50_ms for m in ms]), median([m.p99_ms for m in ms])
    i50, i99 = median([m.p50_ms for m in inproc_runs]), median([m.p99_ms for m in inproc_runs])
    print(f"| binary | service | {p50:.2f} | {p99:.2f} | {i50:.3f} / {i99:.3f} |")
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--batches", type=int, nargs="+", default=list(BATCHES), help="rows per request (1 is needed)"
    )
    parser.add_argument("--pin", choices=sorted(LAYOUTS), default="split")
    parser.add_argument(
        "--nice", type=int, default=-10 if os.geteuid() == 0 else 0, help="niceness of everything measured"
    )
    parser.add_argument("--image", default=stack.IMAGE)
    parser.add_argument("--json", type=Path)
    modes.add_smoke_flag(parser, "inference")
    args = modes.parse(parser, "inference", argv)
    batches = sorted(set(args.batches))
    if 1 not in batches:
        # The latency table is batch 1 with one connection.
        parser.error("--batches must include 1")

    exit_on_sigterm()
    NICE["value"] = args.nice
    tools = install_tools()
    cpus = LAYOUTS[args.pin]
    http: dict[tuple[str, int], list[Measured]] = {}
    local: dict[tuple[str, int], list[Measured]] = {}
    latency: dict[str, list[Measured]] = {}
    load_before = load_average()
    with stack.running(
        image=args.image, inference_cpus=cpus["inference"], redis_cpus=cpus["redis"]
    ) as serving:
        url = serving.inference_url + "/v1/predict"
        started = time.monotonic()
        for r in range(args.rounds):
            for source in SOURCES:
                for batch in batches:
                    payload = body(source, batch)

                    def over_http(c: int, payload: str | bytes = payload, batch: int = batch) -> Measured:
                        http_run(tools, url, payload, c, args.warmup, cpus["load"])
                        cpu = container_cpu_seconds(serving.container)
                        res = http_run(tools, url, payload, c, args.seconds, cpus["load"])
                        cpu = container_cpu_seconds(serving.container) - cpu
                        if res.errors:
                            raise RuntimeError(f"failed requests {res.error_kinds}, batch {batch}")
                        rows = res.requests * batch
                        return Measured(res.rps * batch, res.p50_ms, res.p99_ms, rows / cpu)

                    steps = ["http", "local"] if r % 2 == 0 else ["local", "http"]
                    for step in steps:
                        if step == "http":
                            m = over_http(args.connections)
                            http.setdefault((source, batch), []).append(m)
                            if batch == 1:
                                latency.setdefault(source, []).append(over_http(1))
                        else:
                            m = in_process(source, batch, args.seconds, serving, cpus["inference"])
                            local.setdefault((source, batch), []).append(m)
                            if source == "inline":
                                a = in_process("array", batch, args.seconds, serving, cpus["inference"])
                                local.setdefault(("array", batch), []).append(a)
                        print(
                            f"round {r + 1} {source:<6} batch {batch:>3} {step:<5} "
                            f"{m.rows_per_s:10.0f} rows/s {m.rows_per_cpu_s:10.0f} rows/cpu-s  "
                            f"p50 {m.p50_ms:.3f} ms  p99 {m.p99_ms:.3f} ms  "
                            f"load {load_average()[0]:.2f}",
                            file=sys.stderr,
                            flush=True,
                        )
        elapsed = time.monotonic() - started
    load_after = load_average()

    print(
        "| features | batch | service rows/s | in-process rows/s | service / in-process "
        "| in-process from a ready matrix | service / that |"
    )
    print("|---|---|---|---|---|---|---|")
    summary = []
    for source in JSON_SOURCES:
        for batch in batches:
            h = median([m.rows_per_s for m in http[source, batch]])
            inproc = median([m.rows_per_s for m in local[source, batch]])
            entry = {"source": source, "batch": batch, "service": h, "in_process": inproc}
            extra = "| | |"
            if source == "inline":
                arr = median([m.rows_per_s for m in local["array", batch]])
                entry["in_process_array"] = arr
                extra = f"| {arr:,.0f} | {100 * h / arr:.1f}% |"
            summary.append(entry)
            print(f"| {source} | {batch} | {h:,.0f} | {inproc:,.0f} | {100 * h / inproc:.1f}% {extra}")
    print()
    print("Per CPU-second of the server (the container's cgroup; the scoring process):")
    print()
    print("| features | batch | service rows/CPU-s | in-process rows/CPU-s | service / in-process |")
    print("|---|---|---|---|---|")
    for source in JSON_SOURCES:
        for batch in batches:
            h = median([m.rows_per_cpu_s for m in http[source, batch]])
            inproc = median([m.rows_per_cpu_s for m in local[source, batch]])
            print(f"| {source} | {batch} | {h:,.0f} | {inproc:,.0f} | {100 * h / inproc:.1f}% |")
    print()
    print("| features | batch 1, one connection | p50 ms | p99 ms | in-process p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for source in JSON_SOURCES:
        ms = latency[source]
        inproc_runs = local[source, 1]
        p50, p99 = median([m.p50_ms for m in ms]), median([m.p99_ms for m in ms])
        i50 = median([m.p50_ms for m in inproc_runs])
        i99 = median([m.p99_ms for m in inproc_runs])
        print(f"| {source} | service | {p50:.2f} | {p99:.2f} | {i50:.3f} / {i99:.3f} |")
    print()
    binary = binary_report(http, local, latency, batches)
    print()
    print(
        f"pinning: {args.pin} {cpus}, nice {args.nice}; {args.connections} connections for throughput; "
        f"load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f} (5 min {load_after[1]:.2f}); {args.rounds} rounds, "
        f"{args.seconds:g} s per run, {elapsed / 60:.1f} min"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "binary": binary,
                    "latency_batch1": {s: [m.__dict__ for m in latency[s]] for s in SOURCES},
                    "load_average": {"before": load_before, "after": load_after},
                    "pin": args.pin,
                    "rounds": args.rounds,
                    "seconds": args.seconds,
                    "batches": batches,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
