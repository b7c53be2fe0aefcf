"""Throughput and driver memory of the ``features`` job on generated events,
on the lake's Delta tables against plain Parquet.

Not a test: run it by hand on a quiet machine and compare the figures.

    python -m benchmarks.jobs.features_bench --sizes 1000000 10000000 [--rounds 3] [--redis] [--smoke]

After an untimed warm-up run, for each size it generates the same events
with ``datagen`` twice (untimed): as a Delta table and as plain Parquet.
Each round then times, on ``local[2]``, the ``features`` job as it runs
(the events table in, a commit to the features table out) and its peer:
the same computation with plain Parquet in and out, as the job was before
the lake had tables. The two alternate within a round, so a slower moment
of the machine falls on both. Reported per size and format: the median of
the rounds, and the ratio of the medians (Delta / Parquet). During each run
it samples, every 100 ms, the driver JVM's resident set size (/proc via
psutil) and its heap in use (JVM Runtime). With ``--redis`` a throwaway
loopback ``redis-server`` receives the online copy in both. In local mode
the executors live in the driver JVM, so flat figures across sizes mean no
per-row state reaches the driver.

``--smoke`` is the short pass of ``make bench-smoke`` (``benchmarks/modes.py``):
a warm-up of 1,000 events, then 4,000.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from pyspark import StorageLevel

from benchmarks import modes
from benchmarks.loadgen import exit_on_sigterm
from jobs import online
from jobs.config import RedisSettings, Settings
from jobs.definitions import DEFAULT_TTL_SECONDS, JOBS
from jobs.features import compute_features, laid_out, latest_event_time
from jobs.schema import EVENT_SCHEMA, feature_names
from jobs.session import build_session
from jobs.sources import read_table

MIB = 1024 * 1024


FORMATS = ("delta", "parquet")


@dataclass
class Result:
    events: int
    entities: int
    format: str
    rounds: int
    redis: bool
    seconds: float
    events_per_second: float
    driver_rss_peak_mib: float
    driver_heap_used_peak_mib: float
    driver_heap_live_peak_mib: float


class MemorySampler(threading.Thread):
    """Peak RSS of the driver JVM and its heap, sampled periodically.

    Heap "used" includes garbage not yet collected; "live" is what the old
    generation held after its latest collection, which is what would grow if
    the driver accumulated per-row state.
    """

    def __init__(self, jvm: Any, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.runtime = jvm.java.lang.Runtime.getRuntime()
        self.process = psutil.Process(pid)
        self.interval = interval
        self.stop_event = threading.Event()
        self.peak_rss = 0
        self.peak_heap = 0
        self.peak_live = 0
        self.old_pools = [
            pool
            for pool in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
            if "Old Gen" in str(pool.getName()) or "Tenured" in str(pool.getName())
        ]

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
        self.peak_heap = max(self.peak_heap, self.runtime.totalMemory() - self.runtime.freeMemory())
        for pool in self.old_pools:
            usage = pool.getCollectionUsage()
            if usage is not None:
                self.peak_live = max(self.peak_live, usage.getUsed())

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.stop_event.set()
        self.join()
        self.sample()


def driver_jvm_pid() -> int:
    for child in psutil.Process().children(recursive=True):
        if child.name() == "java":
            return int(child.pid)
    raise RuntimeError("no driver JVM below this process")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_job(spark: Any, name: str, argv: list[str], settings: Settings) -> None:
    job = JOBS[name]
    job.run(spark, settings, job.parser().parse_args(argv))


def parquet_features(spark: Any, events: Path, output: Path, settings: Settings, redis: bool) -> None:
    """The peer: the features job's reads, computation, layout and online
    copy, on plain Parquet in and out."""
    source = read_table(spark, str(events), "parquet", EVENT_SCHEMA)
    reference = latest_event_time(
        read_table(spark, str(events), "parquet", EVENT_SCHEMA, complete_rows=False)
    )
    frame = laid_out(compute_features(source, reference)).persist(StorageLevel.MEMORY_AND_DISK)
    if redis:
        assert settings.redis is not None
        target = online.OnlineTarget.from_settings(settings.redis, DEFAULT_TTL_SECONDS)
        version = f"parquet-{time.monotonic_ns()}"
        online.write_features(frame, target, feature_names(), version)
        online.switch(target, version)
    frame.write.mode("overwrite").parquet(str(output))
    frame.unpersist()


def timed(jvm: Any, run: Callable[[], None]) -> tuple[float, MemorySampler]:
    jvm.java.lang.System.gc()
    sampler = MemorySampler(jvm, driver_jvm_pid())
    sampler.start()
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    sampler.stop()
    return seconds, sampler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--events-per-entity", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each format per size")
    parser.add_argument("--redis", action="store_true", help="also write the online copy to a local Redis")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--warmup-size", type=int, default=100_000, help="events of the untimed first run")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one)")
    modes.add_smoke_flag(parser, "features")
    options = modes.parse(parser, "features", argv)
    # A stopped run (make bench-smoke's time limit) still stops Spark and Redis.
    exit_on_sigterm()

    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="features-bench-"))
    redis_process: subprocess.Popen[bytes] | None = None
    settings = Settings()
    if options.redis:
        binary = shutil.which("redis-server")
        if binary is None:
            parser.error("--redis needs redis-server on PATH")
        port = free_port()
        redis_process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                "bench",
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        settings = Settings(redis=RedisSettings("127.0.0.1", port, "bench"))

    # Spark's driver on loopback: where the hostname resolves to 127.0.0.1,
    # Spark would take the first interface's address instead, and nothing
    # outside this machine needs to reach a local[2] session.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = build_session(
        "features-bench",
        settings,
        master="local[2]",
        extra_conf={"spark.driver.memory": options.driver_memory, "spark.ui.showConsoleProgress": "false"},
    )
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    results: list[Result] = []
    ratios: dict[int, float] = {}
    try:
        # One untimed round first, so class loading and JIT warm-up are not
        # charged to the smallest size.
        for index, size in enumerate([options.warmup_size, *options.sizes]):
            entities = max(1, size // options.events_per_entity)
            events = {fmt: workdir / f"events-{size}.{fmt}" for fmt in FORMATS}
            for fmt, path in events.items():
                if not path.exists():
                    labels = workdir / f"labels-{size}.{fmt}"
                    generate = ["--rows", str(size), "--entities", str(entities), "--format", fmt]
                    generate += ["--output", str(path), "--labels-output", str(labels)]
                    run_job(spark, "datagen", generate, settings)
            job_argv = ["--input", str(events["delta"]), "--output", str(workdir / f"features-{size}.delta")]
            job_argv.append("--online" if options.redis else "--no-online")
            peer_output = workdir / f"features-{size}.parquet"
            runs: dict[str, Callable[[], None]] = {
                "delta": partial(run_job, spark, "features", job_argv, settings),
                "parquet": partial(
                    parquet_features, spark, events["parquet"], peer_output, settings, options.redis
                ),
            }
            measured: dict[str, list[tuple[float, MemorySampler]]] = {fmt: [] for fmt in FORMATS}
            for _ in range(1 if index == 0 else options.rounds):
                for fmt in FORMATS:
                    measured[fmt].append(timed(jvm, runs[fmt]))
            if index == 0:
                continue
            for fmt in FORMATS:
                seconds = statistics.median(s for s, _ in measured[fmt])
                samplers = [sampler for _, sampler in measured[fmt]]
                results.append(
                    Result(
                        size,
                        entities,
                        fmt,
                        options.rounds,
                        options.redis,
                        round(seconds, 2),
                        round(size / seconds),
                        round(max(x.peak_rss for x in samplers) / MIB, 1),
                        round(max(x.peak_heap for x in samplers) / MIB, 1),
                        round(max(x.peak_live for x in samplers) / MIB, 1),
                    )
                )
                print(json.dumps(asdict(results[-1])), flush=True)
            ratios[size] = results[-2].seconds / results[-1].seconds
    finally:
        # A SIGTERM that lands inside a Py4J call leaves the gateway's
        # protocol broken and stop() raising: Redis and the scratch data
        # still go (the JVM exits with this process).
        with contextlib.suppress(Exception):
            spark.stop()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait()
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\n{'events':>12} {'format':>7} {'redis':>5} {'seconds':>8} {'events/s':>10} {'RSS MiB':>8} "
        f"{'heap MiB':>9} {'live MiB':>9}"
    )
    for r in results:
        print(
            f"{r.events:>12,} {r.format:>7} {'yes' if r.redis else 'no':>5} {r.seconds:>8.1f} "
            f"{r.events_per_second:>10,} {r.driver_rss_peak_mib:>8.0f} {r.driver_heap_used_peak_mib:>9.0f} "
            f"{r.driver_heap_live_peak_mib:>9.0f}"
        )
    print()
    for size, ratio in ratios.items():
        print(f"delta / parquet at {size:,} events: {ratio:.2f}x (medians of {options.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
