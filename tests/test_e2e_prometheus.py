"""The live tests' Prometheus check fails on a configured job with no target,
not only on a target that is down; their Alertmanager check needs the alert
active there."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from tools.e2e_common.prometheus import alert_active, targets_up
from tools.e2e_common.report import Failure

CONFIG = {
    "scrape_configs": [
        {"job_name": "prometheus", "static_configs": [{"targets": ["127.0.0.1:9090"]}]},
        {"job_name": "gateway", "dns_sd_configs": [{"names": ["gateway"], "type": "A", "port": 8080}]},
        # Has targets only while a Spark job runs: none is no failure.
        {"job_name": "spark-drivers", "dns_sd_configs": [{"names": ["d"], "type": "A", "port": 4040}]},
    ]
}


def target(job: str, health: str = "up") -> dict[str, Any]:
    return {"labels": {"job": job}, "health": health, "scrapeUrl": f"http://{job}/metrics"}


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the Prometheus and Alertmanager APIs; the test sets
    the active targets (or alerts) they answer with."""
    active: list[dict[str, Any]] = []

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reply: Any
            if self.path == "/api/v1/targets":
                reply = {"status": "success", "data": {"activeTargets": active}}
            elif self.path == "/api/v1/status/config":
                reply = {"status": "success", "data": {"yaml": yaml.safe_dump(CONFIG)}}
            elif self.path == "/api/v2/alerts":
                # Alertmanager's API answers a bare list; the test puts alerts in ``active``.
                reply = active
            else:
                self.send_error(404)
                return
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", active
    finally:
        server.shutdown()


def test_every_configured_job_with_its_targets_up_passes(prometheus: tuple[str, list[Any]]) -> None:
    url, active = prometheus
    active += [target("prometheus"), target("gateway"), target("gateway")]
    assert len(targets_up(url, timeout=1)) == 3


def test_a_configured_job_without_a_target_fails_naming_it(prometheus: tuple[str, list[Any]]) -> None:
    url, active = prometheus
    active.append(target("prometheus"))
    with pytest.raises(Failure, match=r"configured jobs without a target: \['gateway'\]"):
        targets_up(url, timeout=1)


def test_a_target_down_fails_naming_it(prometheus: tuple[str, list[Any]]) -> None:
    url, active = prometheus
    active += [target("prometheus"), target("gateway", health="down")]
    with pytest.raises(Failure, match=r"targets down: \['gateway \(http://gateway/metrics\)'\]"):
        targets_up(url, timeout=1)


def alert(name: str, job: str, state: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "job": job}, "status": {"state": state}}


def test_an_alert_counts_only_active_for_its_job(prometheus: tuple[str, list[Any]]) -> None:
    url, alerts = prometheus
    alerts += [alert("ServiceDown", "inference", "active"), alert("ServiceDown", "gateway", "suppressed")]
    assert not alert_active(url, "ServiceDown", job="gateway")
    alerts.append(alert("ServiceDown", "gateway", "active"))
    assert alert_active(url, "ServiceDown", job="gateway")
