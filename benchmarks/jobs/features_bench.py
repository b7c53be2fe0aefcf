"""Throughput and driver memory of the ``features`` job on generated events.

Not a test: run it by hand on a quiet machine and compare the figures.

    python -m benchmarks.jobs.features_bench --sizes 1000000 10000000 [--redis] [--smoke]

After an untimed warm-up run, for each size it generates events with
``datagen`` (untimed), then times the ``features`` job on ``local[2]`` and
samples, every 100 ms, the driver JVM's
resident set size (/proc via psutil) and its heap in use (JVM Runtime). With
``--redis`` a throwaway loopback ``redis-server`` receives the online copy.
In local mode the executors live in the driver JVM, so flat figures across
sizes mean no per-row state reaches the driver.

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
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks import modes
from benchmarks.loadgen import exit_on_sigterm
from jobs.config import RedisSettings, Settings
from jobs.definitions import JOBS
from jobs.session import build_session

MIB = 1024 * 1024


@dataclass
class Result:
    events: int
    entities: int
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--events-per-entity", type=int, default=100)
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
    try:
        # One untimed run first, so class loading and JIT warm-up are not
        # charged to the smallest size.
        for index, size in enumerate([options.warmup_size, *options.sizes]):
            entities = max(1, size // options.events_per_entity)
            events = workdir / f"events-{size}"
            if not events.exists():
                run_job(
                    spark,
                    "datagen",
                    [
                        "--rows",
                        str(size),
                        "--entities",
                        str(entities),
                        "--output",
                        str(events),
                        "--labels-output",
                        str(workdir / f"labels-{size}"),
                    ],
                    settings,
                )
            jvm.java.lang.System.gc()
            sampler = MemorySampler(jvm, driver_jvm_pid())
            sampler.start()
            started = time.perf_counter()
            run_job(
                spark,
                "features",
                [
                    "--input",
                    str(events),
                    "--output",
                    str(workdir / f"features-{size}"),
                    "--online" if options.redis else "--no-online",
                ],
                settings,
            )
            seconds = time.perf_counter() - started
            sampler.stop()
            if index == 0:
                continue
            results.append(
                Result(
                    size,
                    entities,
                    options.redis,
                    round(seconds, 2),
                    round(size / seconds),
                    round(sampler.peak_rss / MIB, 1),
                    round(sampler.peak_heap / MIB, 1),
                    round(sampler.peak_live / MIB, 1),
                )
            )
            print(json.dumps(asdict(results[-1])), flush=True)
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
        f"\n{'events':>12} {'redis':>5} {'seconds':>8} {'events/s':>10} {'RSS MiB':>8} "
        f"{'heap MiB':>9} {'live MiB':>9}"
    )
    for r in results:
        print(
            f"{r.events:>12,} {'yes' if r.redis else 'no':>5} {r.seconds:>8.1f} {r.events_per_second:>10,} "
            f"{r.driver_rss_peak_mib:>8.0f} {r.driver_heap_used_peak_mib:>9.0f} "
            f"{r.driver_heap_live_peak_mib:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
