"""Dev step 7: the streaming job turned on through config: a driver killed
while files land, the batch job's agreement, a refused file, freshness."""

from __future__ import annotations

from typing import Any

from benchmarks.stream import freshness
from dataplatform.services.spark.shared import STREAM_NAME
from tools.e2e.machine import engine_config
from tools.e2e.stack import DevStack
from tools.e2e_common import gateway as scenario
from tools.e2e_common.report import check, wait_for
from tools.e2e_common.stream import batch_agrees, killed_while_landing, refused_file_quarantined

KNOWN_ENTITIES = 2000
TRIGGER_SECONDS = 5.0
CONTAINER = f"job-{STREAM_NAME}"


def streaming(dev: DevStack, overrides: dict[str, Any]) -> None:
    assert dev.stack is not None
    dev.stack.set_all_config(
        engine_config(
            {**overrides, "spark": {"streaming": {"enabled": True, "triggerSeconds": TRIGGER_SECONDS}}}
        )
    )
    _, seconds = dev.up("the stream on")
    container = dev.container(CONTAINER)

    def steady() -> str:
        container.reload()
        return f"{dev.health(container)}, {container.attrs['RestartCount']} restarts:\n" + container.logs(
            tail=30
        ).decode(errors="replace")

    wait_for(
        f"{container.name} healthy",
        lambda: dev.health(container) == "healthy",
        timeout=150,
        interval=2.0,
        state=steady,
    )
    container.reload()
    check(container.attrs["RestartCount"] == 0, f"{container.name} restarted after up: {steady()}")
    dev.report.add("up: the stream turned on", f"{seconds:.1f} s")
    stores = dev.stream_stores()
    restarts = container.attrs["RestartCount"]

    def running_on() -> bool:
        container.reload()
        return bool(container.attrs["RestartCount"] == restarts and dev.health(container) == "healthy")

    refused_file_quarantined(stores, dev.name, running_on)

    def kill() -> None:
        # The driver's processes die at once, as in a crash or an OOM kill;
        # `docker kill` would count as a stop, which Docker does not restart.
        nonlocal restarts
        container.reload()
        restarts = container.attrs["RestartCount"]
        container.exec_run(["sh", "-c", "kill -9 -1"])

    def restarted() -> bool:
        container.reload()
        return container.attrs["RestartCount"] > restarts and dev.health(container) == "healthy"

    landed = killed_while_landing(stores, kill, restarted, known_entities=KNOWN_ENTITIES)

    def run_features() -> str:
        dev.submit("features")
        return dev.last_output

    batch_seconds = batch_agrees(stores, landed, run_features)
    send = scenario.at_url(dev.outputs["gateway_url"].rstrip("/"))
    figures = freshness.measure(
        stores, send, dev.credentials()["gateway_api_key"], trigger_seconds=TRIGGER_SECONDS
    )
    for what, value in figures.lines(batch_seconds):
        dev.report.add(what, value)
    dev.report.ok(
        f"{len(figures.freshness)} new entities served through the gateway after their files landed"
    )
