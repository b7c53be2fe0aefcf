"""The gateway's real /metrics, after traffic, holds every metric the
catalog lists for it, and its rate limiter works as the ``gateway`` Redis
user of the stack's ACL configuration.

The gateway is the release binary's code built in debug (``cargo build``),
run as a process against the stack's Redis configuration on loopback and a
stand-in upstream.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dataplatform.monitoring import metrics
from tests.local_redis import PASSWORDS, free_port, stack_redis
from tools.harness import ROOT

GATEWAY = ROOT / "services" / "gateway"
KEY = "metrics-test-key-0123456789"
LIMIT = 3


@pytest.fixture(scope="module")
def binary() -> Path:
    """The gateway binary, built once (Cargo's cache makes a rebuild cheap)."""
    build = subprocess.run(
        ["cargo", "build", "--locked", "--quiet", "--bin", "gateway"],
        cwd=GATEWAY,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return GATEWAY / "target" / "debug" / "gateway"


class Upstream(BaseHTTPRequestHandler):
    """Answers like the inference service."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"model": {"name": "churn", "version": "1"}, "predictions": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers or {}), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code


def listening(url: str) -> bool:
    try:
        return request(url) == 200
    except urllib.error.URLError:
        return False


@pytest.fixture(scope="module")
def gateway(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("gateway")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    (work / "redis-password").write_text(PASSWORDS["gateway"] + "\n")
    (work / "api-keys").write_text(KEY + "\n")
    with stack_redis(work) as redis_port:
        port = free_port()
        env = {
            **os.environ,
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{upstream.server_address[1]}",
            "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/1",
            "GATEWAY_REDIS_USERNAME": "gateway",
            "GATEWAY_REDIS_PASSWORD_FILE": str(work / "redis-password"),
            "GATEWAY_API_KEYS_FILE": str(work / "api-keys"),
            "GATEWAY_RATE_LIMIT": str(LIMIT),
            "GATEWAY_RATE_WINDOW_SECONDS": "3600",
            "GATEWAY_RATE_LIMIT_FAIL_MODE": "closed",
        }
        process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while not listening(f"{url}/healthz"):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"the gateway did not start: {process.stderr.read() if process.stderr else ''}"
                    )
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(10)
            upstream.shutdown()


def scrape(url: str) -> dict[str, str]:
    """Sample name -> family type, from the exposition text."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    types: dict[str, str] = {}
    samples: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            family = next((f for f in types if name == f or name.startswith(f + "_")), name)
            samples[name] = types.get(family, "untyped")
    return samples


def test_every_catalogued_gateway_metric_is_exported_after_traffic(gateway: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    statuses = [request(f"{gateway}/v1/predict", b'{"entity_id": "e1"}', headers) for _ in range(LIMIT + 2)]
    # Rate limiting works through the gateway's own Redis user: the
    # closed fail mode would answer 503 if Redis refused its script.
    assert statuses == [200] * LIMIT + [429, 429]
    assert request(f"{gateway}/v1/predict", b"{}", {"Content-Type": "application/json"}) == 401

    samples = scrape(gateway)
    service = metrics.service("gateway")
    missing = sorted(s for m in service.metrics for s in m.samples if s not in samples)
    assert missing == [], f"catalogued but not exported: {missing}"
    for metric in service.metrics:
        for sample in metric.samples:
            assert samples[sample] == metric.type, (sample, samples[sample])


def test_the_rate_limiter_reached_redis_without_errors(gateway: str) -> None:
    with urllib.request.urlopen(f"{gateway}/metrics", timeout=5) as reply:
        lines = reply.read().decode().splitlines()
    values = {line.split()[0]: float(line.split()[1]) for line in lines if line and not line.startswith("#")}
    assert values[str(metrics.GATEWAY_RATELIMIT_BACKEND_ERRORS)] == 0
    assert values[str(metrics.GATEWAY_RATELIMIT_REJECTED)] >= 2
