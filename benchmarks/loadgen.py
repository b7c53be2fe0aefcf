"""Shared pieces of the serving benchmarks: wrk runs, CPU pinning, process memory.

wrk and nginx come from Debian packages unpacked into a cache directory by
``benchmarks/gateway/install-tools.sh`` (nothing is installed into the
system). A wrk run is described by a :class:`Load` and returns a
:class:`Result` with exact percentiles, taken from wrk's own histogram in a
Lua ``done`` hook.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALL_TOOLS = REPO / "benchmarks" / "gateway" / "install-tools.sh"


def cache_dir() -> Path:
    base = os.environ.get("DATAPLATFORM_CACHE") or str(Path.home() / ".cache" / "dataplatform")
    return Path(base)


@dataclass(frozen=True)
class Tools:
    root: Path

    @property
    def nginx(self) -> Path:
        return self.root / "usr" / "sbin" / "nginx"

    @property
    def wrk(self) -> Path:
        return self.root / "usr" / "bin" / "wrk"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = str(self.root / "usr" / "lib" / "x86_64-linux-gnu")
        return env


def install_tools() -> Tools:
    """nginx and wrk from Debian's packages, unpacked into the cache (idempotent)."""
    out = subprocess.run(
        ["bash", str(INSTALL_TOOLS), str(cache_dir() / "bench-tools")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Tools(Path(out.stdout.strip().splitlines()[-1]))


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so containers and servers are removed."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Niceness of every process under test (load generator included), set by
# the benchmarks' --nice option. On a machine shared with builds, a
# negative value lets a woken server preempt background work at once instead
# of waiting for its turn, which is most of the run-to-run noise.
NICE = {"value": 0}


def pinned(cpus: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run on the given CPU list (``taskset -c``) at ``NICE``."""
    prefix = ["taskset", "-c", cpus] if cpus else []
    if NICE["value"]:
        prefix = ["nice", "-n", str(NICE["value"]), *prefix]
    return [*prefix, *argv]


def renice_tree(pid: int) -> None:
    """Every thread of ``pid`` and its descendants at ``NICE``."""
    if not NICE["value"]:
        return
    for proc in process_tree(pid):
        for task in Path(f"/proc/{proc}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, int(task.name), NICE["value"])


def wait_http(url: str, timeout: float = 60.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status < 300:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s: {last}")


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


# Memory of a set of processes: PSS counts shared pages once across them
# (nginx's master and workers share most of theirs), RSS counts them per process.
def memory_kib(pids: Sequence[int]) -> tuple[int, int]:
    pss = rss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name == "Pss":
                pss += int(rest.split()[0])
            elif name == "Rss":
                rss += int(rest.split()[0])
    return pss, rss


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the processes (all their threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def container_cpu_seconds(container: str) -> float:
    """CPU time of a container's cgroup (v1 cpuacct or v2 cpu.stat)."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", container], check=True, stdout=subprocess.PIPE, text=True
    )
    cid = out.stdout.strip()
    for v1 in (
        f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
        f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage",
    ):
        if Path(v1).exists():
            return int(Path(v1).read_text()) / 1e9
    for v2 in Path("/sys/fs/cgroup").glob(f"**/*{cid}*/cpu.stat"):
        for line in v2.read_text().splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
    raise RuntimeError(f"no CPU accounting found for container {container}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], stdout=subprocess.PIPE, text=True, check=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.splitlines():
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


_DONE_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "mean_us": %.1f, "connect": %d, "read": %d, "write": %d, "status": %d, '
    .. '"timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    url: str
    body: str
    connections: int
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)
    cpus: str | None = None


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _script(load: Load) -> str:
    headers = {"Content-Type": "application/json", **load.headers}
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(load.body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _DONE_HOOK


def run_wrk(tools: Tools, load: Load) -> Result:
    """One wrk run (one thread, ``connections`` keep-alive connections)."""
    if load.seconds != int(load.seconds) or load.seconds < 1:
        # wrk reads -d as a whole number of seconds and fails on "0.5s".
        raise ValueError(f"wrk runs for whole seconds, not {load.seconds:g}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(_script(load))
        script = handle.name
    try:
        argv = [
            str(tools.wrk),
            "-t1",
            f"-c{load.connections}",
            f"-d{load.seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            script,
            load.url,
        ]
        out = subprocess.run(
            pinned(load.cpus, argv),
            env=tools.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=load.seconds + 60,
            check=True,
        )
    finally:
        os.unlink(script)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}")
    raw = json.loads(line.removeprefix("RESULT "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        error_kinds={k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]},
    )


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
