"""Where the gateway's CPU goes under load: ``perf record`` of its process
while wrk drives it, summed by the crate each sampled function belongs to.

Used by ``bench.py --profile``. perf comes from Debian's ``linux-perf``,
unpacked into the cache by ``install-perf.sh``; the gateway binary is a
release build that keeps its symbol table (the project's release profile
strips it), built into a target directory of its own.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.loadgen import REPO, cache_dir

INSTALL_PERF = REPO / "benchmarks" / "gateway" / "install-perf.sh"
GATEWAY_CRATE = REPO / "services" / "gateway"
FREQUENCY_HZ = 1999

# What a frame's crate says about the work, for the summary's groups.
GROUPS = {
    "kernel": "kernel: sockets, TCP on loopback, epoll, scheduling",
    "hyper": "hyper: HTTP/1 parsing and writing, server and pooled client",
    "tokio": "tokio: runtime, I/O driver, task wake-ups",
    "axum": "axum, tower, tower-http: routing, middleware, timeout",
    "redis": "redis: the rate limiter's lease refills",
    "gateway": "the gateway's own code (auth, lease, proxy, logging)",
    "alloc": "allocation (mimalloc, memcpy, memmove)",
    "log": "tracing, serde_json: log lines and JSON",
    "metrics": "prometheus: request metrics",
    "other": "everything else (std, core, libc, hashing, uuid)",
}
CRATE_GROUP = {
    "hyper": "hyper",
    "hyper_util": "hyper",
    "httparse": "hyper",
    "http": "hyper",
    "http_body": "hyper",
    "http_body_util": "hyper",
    "bytes": "hyper",
    "h2": "hyper",
    "tokio": "tokio",
    "mio": "tokio",
    "axum": "axum",
    "axum_core": "axum",
    "tower": "axum",
    "tower_http": "axum",
    "tower_layer": "axum",
    "tower_service": "axum",
    "matchit": "axum",
    "redis": "redis",
    "combine": "redis",
    "gateway": "gateway",
    "mimalloc": "alloc",
    "tracing": "log",
    "tracing_core": "log",
    "tracing_subscriber": "log",
    "serde_json": "log",
    "serde": "log",
    "prometheus": "metrics",
}
# Wrappers whose type parameter says whose the work is.
GENERIC_WRAPPERS = ("core::", "alloc::", "std::", "<core::", "<alloc::", "<std::")


@dataclass
class Profile:
    samples: int
    seconds: float
    connections: int
    groups: dict[str, float] = field(default_factory=dict)
    top: list[tuple[float, str]] = field(default_factory=list)

    def table(self) -> str:
        lines = [
            f"Gateway profile: perf record at {FREQUENCY_HZ} Hz of the gateway process for "
            f"{self.seconds:g} s at {self.connections} connections, {self.samples} samples; "
            "share of its CPU (self time) by where it ran:",
            "",
            "| where | share |",
            "|---|---|",
        ]
        for group, share in sorted(self.groups.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {GROUPS[group]} | {share:.1f}% |")
        lines += ["", "Hottest functions (self time):", "", "| share | function |", "|---|---|"]
        for share, name in self.top:
            lines.append(f"| {share:.1f}% | `{name[:110]}` |")
        return "\n".join(lines)

    def record(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "seconds": self.seconds,
            "connections": self.connections,
            "frequency_hz": FREQUENCY_HZ,
            "groups": self.groups,
            "top": [{"share": s, "function": n} for s, n in self.top],
        }


def install_perf() -> tuple[Path, dict[str, str]]:
    out = subprocess.run(
        ["bash", str(INSTALL_PERF), str(cache_dir() / "bench-perf")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    root = Path(out.stdout.strip().splitlines()[-1])
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{root}/usr/lib/x86_64-linux-gnu:{root}/lib/x86_64-linux-gnu"
    return root / "usr" / "bin" / "perf", env


def build_with_symbols() -> Path:
    """The release build with its symbol table, so perf can name functions."""
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=GATEWAY_CRATE,
        check=True,
        stdout=subprocess.PIPE,
    )
    target = Path(json.loads(meta.stdout)["target_directory"]) / "profiling"
    env = dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="false", CARGO_TARGET_DIR=str(target))
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--bin", "gateway"],
        cwd=GATEWAY_CRATE,
        env=env,
        check=True,
    )
    return target / "release" / "gateway"


def crate_of(function: str) -> str:
    """The crate a demangled Rust function belongs to: the first path
    segment, or for a std/core/alloc wrapper (``drop_in_place<T>``, ``<Box<T>
    as Future>::poll``) the first other crate named inside it."""
    name = function.lstrip("<&_ ")
    if name.startswith(GENERIC_WRAPPERS):
        # Path starts only: a crate name opens the name or follows `<`, `&`,
        # `(`, `,` or a space (`core::ptr::...` names the module `ptr`).
        starts = re.findall(r"(?:^|[<&(,\s])([a-z_][a-z0-9_]*)::", function)
        inner = [c for c in starts if c not in ("core", "alloc", "std")]
        if inner:
            return inner[0]
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    return match[1] if match else name


def group_of(dso: str, function: str) -> str:
    if dso == "[kernel.kallsyms]":
        return "kernel"
    if function.startswith(("mi_", "_mi_")) or re.search(r"mem(cpy|move|set)|malloc|free", function):
        return "alloc"
    return CRATE_GROUP.get(crate_of(function), "other")


def summarise(report: str, connections: int, seconds: float, top: int = 15) -> Profile:
    """A ``perf report --stdio --no-children --sort dso,symbol`` text as groups
    and hottest functions."""
    samples = 0
    match = re.search(r"# Samples: (\d+)([KM]?)", report)
    if match:
        samples = int(match[1]) * {"": 1, "K": 1000, "M": 1_000_000}[match[2]]
    groups: dict[str, float] = collections.defaultdict(float)
    functions: list[tuple[float, str]] = []
    for line in report.splitlines():
        row = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.+?)\s*$", line)
        if not row:
            continue
        share, dso, kind, function = float(row[1]), row[2], row[3], row[4]
        groups[group_of("[kernel.kallsyms]" if kind == "k" else dso, function)] += share
        functions.append((share, function))
    return Profile(samples, seconds, connections, dict(groups), sorted(functions, reverse=True)[:top])


def profile_under_load(pid: int, seconds: float, connections: int, load: Callable[[], object]) -> Profile:
    """``perf record`` of ``pid`` while ``load()`` runs (it should run about
    ``seconds``), then the summary of what it sampled."""
    perf, env = install_perf()
    data = cache_dir() / "bench-perf" / f"gateway-{os.getpid()}.data"
    recorder = subprocess.Popen(
        [str(perf), "record", "-F", str(FREQUENCY_HZ), "-p", str(pid), "-o", str(data), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # perf attaches in well under a second; load started before that is
        # only not sampled.
        time.sleep(0.5)
        load()
    finally:
        recorder.send_signal(signal.SIGINT)
        _, err = recorder.communicate(timeout=60)
    if recorder.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"perf record failed ({recorder.returncode}): {err.decode()[-500:]}")
    try:
        report = subprocess.run(
            [
                str(perf),
                "report",
                "-i",
                str(data),
                "--stdio",
                "--no-children",
                "--sort",
                "dso,symbol",
                "--percent-limit",
                "0.1",
            ],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ).stdout
    finally:
        data.unlink(missing_ok=True)
    return summarise(report, connections, seconds)
