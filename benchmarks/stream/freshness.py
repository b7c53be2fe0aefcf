"""How fresh the streaming job keeps the online features, and how fast it drains a backlog.

Freshness: a file landing with the first event of a new entity, to the
first prediction for that entity the gateway answers 200 (before it, 404:
no online features). Files land every ``--every`` seconds and a poller asks
the gateway for every entity still waiting, so each sample's resolution is
about the poll round (a few tens of milliseconds). Its peer is the batch
``features`` job, the only other way an event reaches a prediction: its
wall time, measured in the same run, against the stream's p50.

Throughput: ``--backlog-events`` events landed at once in
``--backlog-files`` files, to all of them in the events table, over the
time from the last file landed; it includes up to one trigger interval of
waiting, so it understates what the stream sustains.

Measured in ``make e2e``, which calls ``measure``; on a dev stack kept with
``python -m tools.e2e --keep``, with the stream on::

    python -m benchmarks.stream.freshness --stack e2e-...
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from dataclasses import dataclass

from tools.e2e_common import gateway as scenario
from tools.e2e_common.gateway import Send
from tools.e2e_common.report import check, wait_for
from tools.e2e_common.stream import Landed, StreamStores, event_lines

POLL_GAP_SECONDS = 0.02


@dataclass(frozen=True)
class Figures:
    freshness: list[float]
    events_per_second: float
    backlog_events: int
    trigger_seconds: float

    def lines(self, batch_seconds: float | None) -> list[tuple[str, str]]:
        p50 = statistics.median(self.freshness)
        p99 = scenario.percentile(self.freshness, 99)
        rows = [
            (
                f"stream freshness, landed -> served "
                f"({len(self.freshness)} files, trigger {self.trigger_seconds:g} s)",
                f"p50 {p50:.1f} s, p99 {p99:.1f} s",
            ),
            (
                f"stream throughput ({self.backlog_events:,}-event backlog)",
                f"{self.events_per_second:,.0f} events/s",
            ),
        ]
        if batch_seconds is not None:
            rows.append(
                (
                    "batch features run / stream p50 (same run)",
                    f"{batch_seconds:.1f} s / {p50:.1f} s = {batch_seconds / p50:.1f}x",
                )
            )
        return rows


def freshness(stores: StreamStores, send: Send, key: str, samples: int, every: float) -> list[float]:
    """Seconds from each file landed to its new entity served."""
    rng = random.Random(5)
    run = time.strftime("%H%M%S")
    landed_at: dict[str, float] = {}
    served_at: dict[str, float] = {}
    lock = threading.Lock()
    done = threading.Event()
    budget = Landed(next_id=2 * 10**12)

    def poll() -> None:
        while not (done.is_set() and len(served_at) == len(landed_at)):
            with lock:
                waiting = [e for e in landed_at if e not in served_at]
            if not waiting:
                time.sleep(POLL_GAP_SECONDS)
                continue
            for entity in waiting:
                reply = send("POST", scenario.PREDICT, scenario.entity(entity), scenario.auth(key))
                if reply.status == 200:
                    with lock:
                        served_at[entity] = time.monotonic()
                else:
                    check(reply.status in (404, 429), f"{entity}: {reply.status} {reply.body[:200]!r}")
                time.sleep(POLL_GAP_SECONDS)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    for i in range(samples):
        entity = f"fresh{run}-{i}"
        body = event_lines(budget.events(rng, [entity], 1))
        stores.land(f"fresh-{run}-{i:03d}.jsonl", body)
        with lock:
            landed_at[entity] = time.monotonic()
        time.sleep(every)
    done.set()
    poller.join(timeout=180)
    check(not poller.is_alive(), f"{len(landed_at) - len(served_at)} new entities never served in 180 s")
    return [served_at[e] - landed_at[e] for e in landed_at]


def throughput(stores: StreamStores, events: int, files: int) -> float:
    """Events per second from a backlog landed at once to all of it in the table."""
    rng = random.Random(9)
    run = time.strftime("%H%M%S")
    entities = [f"u{i:08d}" for i in range(2000)]
    landed = Landed(next_id=3 * 10**12)
    bodies = [event_lines(landed.events(rng, entities, events // files)) for _ in range(files)]
    rows = stores.rows() + landed.total
    for i, body in enumerate(bodies):
        stores.land(f"backlog-{run}-{i:03d}.jsonl", body)
    started = time.monotonic()
    wait_for("the backlog in the events table", lambda: stores.rows() >= rows, timeout=600, interval=0.5)
    return landed.total / (time.monotonic() - started)


def measure(
    stores: StreamStores,
    send: Send,
    key: str,
    *,
    trigger_seconds: float,
    samples: int = 20,
    every: float = 1.5,
    backlog_events: int = 100_000,
    backlog_files: int = 20,
) -> Figures:
    found = freshness(stores, send, key, samples, every)
    rate = throughput(stores, backlog_events, backlog_files)
    return Figures(found, rate, backlog_events, trigger_seconds)


def main(argv: list[str] | None = None) -> int:
    from pulumi import automation as auto

    from tools.e2e.stack import DevStack
    from tools.repo import ROOT
    from tools.signals import deliver_sigint

    deliver_sigint()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream.freshness", description=__doc__)
    parser.add_argument("--stack", required=True, help="a dev stack with spark.streaming on")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--every", type=float, default=1.5)
    parser.add_argument("--backlog-events", type=int, default=100_000)
    parser.add_argument("--backlog-files", type=int, default=20)
    parser.add_argument("--trigger-seconds", type=float, default=5.0, help="the stack's, for the report")
    args = parser.parse_args(argv)
    dev = DevStack(args.stack, 0)
    dev.stack = auto.select_stack(stack_name=args.stack, work_dir=str(ROOT))
    dev.refresh_outputs()
    stores = dev.stream_stores()
    send = scenario.at_url(dev.outputs["gateway_url"].rstrip("/"))
    figures = measure(
        stores,
        send,
        dev.credentials()["gateway_api_key"],
        trigger_seconds=args.trigger_seconds,
        samples=args.samples,
        every=args.every,
        backlog_events=args.backlog_events,
        backlog_files=args.backlog_files,
    )
    for what, value in figures.lines(None):
        print(f"{what}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
