"""The gateway against nginx, in front of the same inference container.

    python -m benchmarks.gateway.bench [--rounds 3] [--seconds 10] [--pin split|none] [--smoke]
                                       [--profile SECONDS]

Three variants get the same wrk load (one body, ``POST /v1/predict``): straight
to inference, through Debian's nginx (API key checked through a ``map``,
``limit_req`` per key, keep-alive to the upstream) and through the gateway
(API key, per-key GCRA in Redis, fail-closed so every request really goes to
Redis). Each round runs every concurrency and, within it, every variant one
after the other in a rotating order, so load from other work on the machine
falls on all of them alike; the tables report medians over rounds.

``--smoke`` is the short pass of ``make bench-smoke`` (``benchmarks/modes.py``):
one round of a second per run at 1 and 8 connections, with the gateway
binary taken from the project's gateway image instead of a host build.

``--profile SECONDS`` adds one more gateway run at the highest concurrency
under ``perf record`` and prints where the gateway's CPU went, by crate and
by function (``profile.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import modes
from benchmarks.gateway import profile as gateway_profile
from benchmarks.inference import stack as inference_stack
from benchmarks.loadgen import (
    NICE,
    REPO,
    Load,
    Result,
    Tools,
    cpu_seconds,
    exit_on_sigterm,
    free_port,
    install_tools,
    load_average,
    median,
    memory_kib,
    pinned,
    process_tree,
    run_wrk,
    wait_http,
)

GATEWAY_CRATE = REPO / "services" / "gateway"
BODY = json.dumps({"entity_id": inference_stack.entity_id(1)})
VARIANTS = ("direct", "nginx", "gateway")

# Where each process runs with --pin split: the load generator, both proxies
# and Redis share CPU 0; the inference container has CPU 1 to itself, so
# neither proxy takes CPU from the model server and "direct" is the same
# service in every run.
LAYOUTS: dict[str, dict[str, str | None]] = {
    "split": {"load": "0", "proxy": "0", "redis": "0", "inference": "1"},
    "none": {"load": None, "proxy": None, "redis": None, "inference": None},
}

NGINX_CONF = """\
worker_processes auto;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {work}/nginx-access.log;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    client_max_body_size 1m;

    map $http_x_api_key $api_client {{
        default "";
        "{key}" client-1;
    }}
    # One bucket per key; the rate is out of reach, as the gateway's is here.
    limit_req_zone $api_client zone=per_key:10m rate={rate}r/s;
    limit_req_status 429;

    upstream inference {{
        server {upstream};
        keepalive 256;
    }}

    server {{
        listen 127.0.0.1:{port};
        location /v1/ {{
            if ($api_client = "") {{
                return 401;
            }}
            limit_req zone=per_key burst={rate} nodelay;
            proxy_pass http://inference;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-API-Key "";
        }}
    }}
}}
"""


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)


def build_gateway() -> Path:
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--bin", "gateway"], cwd=GATEWAY_CRATE, check=True
    )
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=GATEWAY_CRATE,
        check=True,
        stdout=subprocess.PIPE,
    )
    return Path(json.loads(meta.stdout)["target_directory"]) / "release" / "gateway"


def gateway_from_image(image: str, workdir: Path) -> Path:
    """The gateway binary of a gateway image, copied out: the image's build
    stage is the same ``cargo build --release --locked``, and its runtime is
    the Debian release of this machine, so it runs here as it is."""
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        raise SystemExit(
            f"image {image} is missing: DATAPLATFORM_VERSION={image.rpartition(':')[2]} "
            "bash scripts/build-images.sh gateway"
        )
    name = f"dp-bench-gateway-bin-{os.getpid()}"
    subprocess.run(["docker", "create", "--name", name, image], check=True, stdout=subprocess.DEVNULL)
    try:
        target = workdir / "gateway"
        subprocess.run(["docker", "cp", f"{name}:/usr/local/bin/gateway", str(target)], check=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return target


@contextlib.contextmanager
def started(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def status_of(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=BODY.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class MemorySampler(threading.Thread):
    """Peak PSS and RSS of a set of processes, sampled every 100 ms."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = (0, 0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            pss, rss = memory_kib(self.pids)
            self.peak = (max(self.peak[0], pss), max(self.peak[1], rss))


@dataclass
class Row:
    connections: int
    variant: str
    p50_ms: float
    p99_ms: float
    rps: float
    proxy_cpu_us: float
    redis_cpu_us: float
    errors: int
    runs: list[dict[str, float]]


def measure(
    tools: Tools,
    targets: dict[str, str],
    headers: dict[str, dict[str, str]],
    concurrency: list[int],
    rounds: int,
    seconds: float,
    warmup: float,
    cpus: str | None,
    samplers: dict[str, MemorySampler],
    cpu_pids: dict[str, list[int]],
) -> list[Row]:
    results: dict[tuple[int, str], list[Result]] = {}
    cpu: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for r in range(rounds):
        for c in concurrency:
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
            for variant in order:
                url = targets[variant] + "/v1/predict"
                if warmup:
                    run_wrk(tools, Load(url, BODY, c, warmup, headers[variant], cpus))
                sampler = samplers.get(variant) if c == max(concurrency) else None
                if sampler and not sampler.is_alive():
                    sampler.start()
                before = [cpu_seconds(cpu_pids[variant]), cpu_seconds(cpu_pids["redis"])]
                result = run_wrk(tools, Load(url, BODY, c, seconds, headers[variant], cpus))
                proxy_s = cpu_seconds(cpu_pids[variant]) - before[0]
                redis_s = cpu_seconds(cpu_pids["redis"]) - before[1]
                cpu.setdefault((c, variant), []).append(
                    (1e6 * proxy_s / result.requests, 1e6 * redis_s / result.requests)
                )
                if result.errors:
                    # Reported, not fatal: an overloaded upstream's own errors
                    # (for instance its Redis timeout) are part of the result.
                    print(f"{variant} at {c} connections: failed {result.error_kinds}", file=sys.stderr)
                results.setdefault((c, variant), []).append(result)
                print(
                    f"round {r + 1} c={c:>3} {variant:<8} p50 {result.p50_ms:7.3f} ms  "
                    f"p99 {result.p99_ms:7.3f} ms  {result.rps:8.1f} req/s  load {load_average()[0]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    rows = []
    for (c, variant), runs in sorted(results.items()):
        rows.append(
            Row(
                c,
                variant,
                median([x.p50_ms for x in runs]),
                median([x.p99_ms for x in runs]),
                median([x.rps for x in runs]),
                median([x[0] for x in cpu[c, variant]]),
                median([x[1] for x in cpu[c, variant]]),
                sum(x.errors for x in runs),
                [{"p50_ms": x.p50_ms, "p99_ms": x.p99_ms, "rps": x.rps} for x in runs],
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    by = {(r.connections, r.variant): r for r in rows}
    lines = [
        "| connections | direct p50 / p99 ms | direct req/s | nginx added p50 / p99 ms | nginx kept "
        "| gateway added p50 / p99 ms | gateway kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in sorted({r.connections for r in rows}):
        d, n, g = by[c, "direct"], by[c, "nginx"], by[c, "gateway"]
        lines.append(
            f"| {c} | {d.p50_ms:.2f} / {d.p99_ms:.2f} | {d.rps:.0f} "
            f"| {n.p50_ms - d.p50_ms:+.2f} / {n.p99_ms - d.p99_ms:+.2f} | {100 * n.rps / d.rps:.1f}% "
            f"| {g.p50_ms - d.p50_ms:+.2f} / {g.p99_ms - d.p99_ms:+.2f} | {100 * g.rps / d.rps:.1f}% |"
        )
    failed = [f"{r.variant} at {r.connections}: {r.errors}" for r in rows if r.errors]
    if failed:
        lines.append("")
        lines.append("Requests answered with errors (all rounds): " + ", ".join(failed))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--pin", choices=sorted(LAYOUTS), default="split")
    parser.add_argument("--gateway-bin", type=Path, help="default: cargo build --release")
    parser.add_argument("--gateway-image", help="take the gateway binary from this image instead")
    parser.add_argument(
        "--nice", type=int, default=-10 if os.geteuid() == 0 else 0, help="niceness of everything measured"
    )
    parser.add_argument("--image", default=inference_stack.IMAGE)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the rounds, perf-record the gateway this long at the highest concurrency "
        "(a release build with symbols, perf from Debian) and print where its CPU goes",
    )
    modes.add_smoke_flag(parser, "gateway")
    args = modes.parse(parser, "gateway", argv)

    exit_on_sigterm()
    NICE["value"] = args.nice
    tools = install_tools()
    cpus = LAYOUTS[args.pin]
    api_key = os.urandom(16).hex()
    rate = 1_000_000

    with contextlib.ExitStack() as stack:
        # Before anything starts: a cold release build takes minutes.
        if args.gateway_bin:
            gateway_bin = args.gateway_bin
        elif args.profile:
            gateway_bin = gateway_profile.build_with_symbols()
        elif args.gateway_image:
            bin_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="dp-bench-gateway-"))
            gateway_bin = gateway_from_image(args.gateway_image, Path(bin_dir))
        else:
            gateway_bin = build_gateway()
        serving = stack.enter_context(
            inference_stack.running(
                image=args.image, inference_cpus=cpus["inference"], redis_cpus=cpus["redis"]
            )
        )
        work = serving.workdir

        nginx_port = free_port()
        (work / "nginx.conf").write_text(
            NGINX_CONF.format(
                work=work,
                key=api_key,
                rate=rate,
                port=nginx_port,
                upstream=serving.inference_url.removeprefix("http://"),
            )
        )
        nginx_argv = [str(tools.nginx), "-p", str(work), "-e", str(work / "nginx-error.log")]
        nginx = stack.enter_context(
            started(pinned(cpus["proxy"], [*nginx_argv, "-c", str(work / "nginx.conf")]), work / "nginx.out")
        )

        (work / "api-keys").write_text(api_key + "\n")
        (work / "redis-password").write_text(serving.redis_password + "\n")
        gateway_port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "GATEWAY_LISTEN": f"127.0.0.1:{gateway_port}",
                "GATEWAY_UPSTREAM_URL": serving.inference_url,
                "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{serving.redis_port}/1",
                "GATEWAY_REDIS_PASSWORD_FILE": str(work / "redis-password"),
                "GATEWAY_API_KEYS_FILE": str(work / "api-keys"),
                "GATEWAY_RATE_LIMIT": str(rate),
                "GATEWAY_RATE_WINDOW_SECONDS": "1",
                "GATEWAY_RATE_LIMIT_FAIL_MODE": "closed",
                "GATEWAY_LOG": "info",
            }
        )
        gateway = stack.enter_context(
            started(pinned(cpus["proxy"], [str(gateway_bin)]), work / "gateway.log", env)
        )

        targets = {
            "direct": serving.inference_url,
            "nginx": f"http://127.0.0.1:{nginx_port}",
            "gateway": f"http://127.0.0.1:{gateway_port}",
        }
        wait_http(targets["gateway"] + "/readyz")
        keyed = {"Content-Type": "application/json", "X-API-Key": api_key}
        for variant in ("nginx", "gateway"):
            wait_http(targets[variant] + "/v1/models", headers={"X-API-Key": api_key})
            unkeyed = status_of(targets[variant] + "/v1/predict", {"Content-Type": "application/json"})
            ok = status_of(targets[variant] + "/v1/predict", keyed)
            if (unkeyed, ok) != (401, 200):
                raise SystemExit(f"{variant}: without key {unkeyed}, with key {ok} (expected 401, 200)")

        time.sleep(1)
        at_rest = {
            "nginx": memory_kib(process_tree(nginx.pid)),
            "gateway": memory_kib(process_tree(gateway.pid)),
        }
        samplers = {
            "nginx": MemorySampler(process_tree(nginx.pid)),
            "gateway": MemorySampler(process_tree(gateway.pid)),
        }
        headers = {"direct": {}, "nginx": {"X-API-Key": api_key}, "gateway": {"X-API-Key": api_key}}
        load_before = load_average()
        started_at = time.monotonic()
        rows = measure(
            tools,
            targets,
            headers,
            sorted(args.concurrency),
            args.rounds,
            args.seconds,
            args.warmup,
            cpus["load"],
            samplers,
            {
                "direct": [],
                "nginx": process_tree(nginx.pid),
                "gateway": [gateway.pid],
                "redis": [serving.redis_pid],
            },
        )
        elapsed = time.monotonic() - started_at
        load_after = load_average()
        for sampler in samplers.values():
            sampler.stop.set()
        nginx_workers = len(process_tree(nginx.pid)) - 1
        profiled = None
        if args.profile:
            top = max(args.concurrency)
            profiled = gateway_profile.profile_under_load(
                gateway.pid,
                args.profile,
                top,
                lambda: run_wrk(
                    tools,
                    Load(
                        targets["gateway"] + "/v1/predict",
                        BODY,
                        top,
                        args.profile,
                        headers["gateway"],
                        cpus["load"],
                    ),
                ),
            )

    print(table(rows))
    print()
    print("CPU time per request (median over rounds; Redis serves inference's features in every variant):")
    print()
    print("| connections | nginx µs | gateway µs | Redis µs direct / nginx / gateway |")
    print("|---|---|---|---|")
    by = {(r.connections, r.variant): r for r in rows}
    for c in sorted({r.connections for r in rows}):
        d, n, g = by[c, "direct"], by[c, "nginx"], by[c, "gateway"]
        print(
            f"| {c} | {n.proxy_cpu_us:.0f} | {g.proxy_cpu_us:.0f} "
            f"| {d.redis_cpu_us:.0f} / {n.redis_cpu_us:.0f} / {g.redis_cpu_us:.0f} |"
        )
    print()
    print("| | at rest PSS / RSS MiB | under load (peak) PSS / RSS MiB |")
    print("|---|---|---|")
    for name in ("nginx", "gateway"):
        rest, peak = at_rest[name], samplers[name].peak
        print(
            f"| {name} | {rest[0] / 1024:.1f} / {rest[1] / 1024:.1f} "
            f"| {peak[0] / 1024:.1f} / {peak[1] / 1024:.1f} |"
        )
    print()
    print(
        f"pinning: {args.pin} {cpus}, nice {args.nice}; nginx workers: {nginx_workers}; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"(5 min {load_after[1]:.2f}); {args.rounds} rounds, {args.seconds:g} s per run, "
        f"{elapsed / 60:.1f} min"
    )
    if profiled:
        print()
        print(profiled.table())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [asdict(r) for r in rows],
                    "memory_kib": {
                        k: {"rest": at_rest[k], "peak": samplers[k].peak} for k in ("nginx", "gateway")
                    },
                    "pin": args.pin,
                    "rounds": args.rounds,
                    "seconds": args.seconds,
                    "concurrency": sorted(args.concurrency),
                    "load_average": {"before": load_before, "after": load_after},
                    "profile": profiled.record() if profiled else None,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
