"""``python3 -m inference`` as the container runs it: env configuration, HTTP, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from inference_testkit import Publish, free_port

SERVICE_ROOT = Path(__file__).resolve().parents[1]


def _request(
    url: str, body: dict[str, Any] | None = None, request_id: str = "test"
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback URL built by the test
        url, data=data, headers={"content-type": "application/json", "x-request-id": request_id}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_module_entry_point_serves_and_logs_json(
    publish: Publish, service_env: dict[str, str], tmp_path: Path
) -> None:
    publish("20260101T000000Z")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INFERENCE_")},
        **service_env,
        "INFERENCE_PORT": str(port),
        "INFERENCE_HOST": "127.0.0.1",
        "PYTHONPATH": str(SERVICE_ROOT),
    }
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "inference"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    status, _ = _request(f"{base}/readyz")
                    if status == 200:
                        break
                except (urllib.error.URLError, ConnectionError):
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"service did not become ready:\n{log_path.read_text()}")
                time.sleep(0.1)

            status, body = _request(
                f"{base}/v1/predict",
                {"features": {"events_7d": 1, "spend_30d": 2, "tenure_days": 3}},
            )
            assert status == 200
            assert body["model"]["version"] == "20260101T000000Z"
            status, body = _request(
                f"{base}/v1/predict", {"entity_id": "missing-entity"}, request_id="req-404"
            )
            assert status == 404
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)

    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in {0, -signal.SIGTERM}
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert records, "the service logged nothing"
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    assert any(
        r["message"] == "model loaded" and r["version"] == "20260101T000000Z" for r in records
    )
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any(r.get("request_id") == "req-404" and '" 404' in r["message"] for r in access)
    assert any(r["message"] == "Application shutdown complete." for r in records)
    assert not any("color_message" in r for r in records)


def test_invalid_configuration_exits_with_a_json_error(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INFERENCE_")},
        "PYTHONPATH": str(SERVICE_ROOT),
        "INFERENCE_REDIS_URL": "redis://:hunter2@redis:6379/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "inference"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    record = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert record["message"] == "invalid configuration"
    fields = {tuple(error["loc"]) for error in record["errors"]}
    assert {("redis_url",), ("s3_endpoint",), ("s3_access_key_file",)} <= fields
    # The rejected URL carried a password; it must not be echoed.
    assert "hunter2" not in result.stdout.decode()
