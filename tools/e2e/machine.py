"""What this machine adds to Pulumi.dev.yaml: image stand-ins, free host ports, the project's images built."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

import docker  # type: ignore[import-untyped]
from pulumi import automation as auto

from tools.defaults import default_image, host_port_keys
from tools.e2e_common.stack import engine_config as as_engine_config
from tools.harness import merge_config, stack_config
from tools.repo import ROOT

STANDINS = {
    "redis": "dataplatform/redis-standin:7.0",
    "prometheus": "dataplatform/prometheus-standin:2.42",
    "alertmanager": "dataplatform/alertmanager-standin:0.25",
}
# Every host port the dev tier publishes, as config keys.
PORT_KEYS = host_port_keys()


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def image_available(engine: docker.DockerClient, reference: str) -> bool:
    try:
        engine.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        pass
    try:
        engine.images.pull(reference)
        return True
    except docker.errors.APIError:
        return False


def machine_overrides(engine: docker.DockerClient) -> tuple[dict[str, Any], list[str]]:
    """Config this machine needs on top of Pulumi.dev.yaml, and why."""
    images: dict[str, str] = {}
    notes = []
    for name, standin in STANDINS.items():
        official = default_image(name)
        if not image_available(engine, official):
            images[name] = standin
            notes.append(f"{official} cannot be pulled here: using {standin}")
    overrides: dict[str, Any] = {}
    if images:
        overrides["images"] = images
    grafana = default_image("grafana")
    if not image_available(engine, grafana):
        overrides["grafana"] = {"enabled": False}
        notes.append(f"{grafana} cannot be pulled or built here: Grafana left out")
    overrides["hostPorts"] = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
    # High enough for the latency run, low enough for a burst to cross it.
    overrides["gateway"] = {"replicas": 1, "maxReplicas": 1, "rateLimit": 1500, "rateWindowSeconds": 60}
    # An alert within seconds of a service stopping, not minutes.
    overrides["monitoring"] = {
        "scrapeInterval": "5s",
        "evaluationInterval": "5s",
        "alertFor": {"ServiceDown": "10s"},
    }
    return overrides, notes


def engine_config(overrides: dict[str, Any]) -> dict[str, auto.ConfigValue]:
    """Pulumi.dev.yaml's config with ``overrides``, as the Automation API takes it."""
    return as_engine_config(merge_config(stack_config("dev"), overrides))


def build_images() -> float:
    start = time.monotonic()
    subprocess.run(["bash", str(ROOT / "scripts" / "build-images.sh"), "--standins"], check=True)
    return time.monotonic() - start
