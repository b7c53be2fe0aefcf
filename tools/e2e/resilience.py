"""Dev step 6: a killed inference process restarted; Redis and MinIO replaced, their data kept."""

from __future__ import annotations

import time

from tools.e2e.stack import DevStack
from tools.e2e_common.gateway import PREDICT, auth, entity
from tools.e2e_common.pipeline import latest_model
from tools.e2e_common.report import check, wait_for
from tools.e2e_common.web import http


def resilience(dev: DevStack, version: str) -> None:
    url = dev.outputs["gateway_url"].rstrip("/") + PREDICT
    headers = auth(dev.credentials()["gateway_api_key"])
    body = entity("u00000002")
    inference = dev.container("inference")
    restarts = inference.attrs["RestartCount"]
    # A crash: the service's processes die; the restart policy brings it back.
    inference.exec_run(["sh", "-c", "kill -KILL -1"], user=inference.attrs["Config"]["User"])
    start = time.monotonic()
    reply = wait_for(
        "the gateway answering 5xx while inference is down",
        lambda: (r := http("POST", url, body, headers, timeout=5)).status >= 500 and r,
        timeout=10,
        interval=0.05,
    )
    started = time.monotonic()
    http("POST", url, body, headers, timeout=5)
    dev.report.add(
        "gateway with inference down", f"{reply.status} in {(time.monotonic() - started) * 1000:.0f} ms"
    )

    def back() -> bool:
        r = http("POST", url, body, headers, timeout=5)
        return r.status == 200 and r.json()["model"]["version"] == version

    wait_for("predictions resuming after the crash", back, timeout=120, interval=1)
    inference.reload()
    check(inference.attrs["RestartCount"] > restarts, "inference was not restarted by its policy")
    dev.report.add("inference crash to serving again", f"{time.monotonic() - start:.1f} s")

    assert dev.stack is not None
    deployment = dev.stack.export_stack().deployment
    assert deployment is not None
    # The stack's platform is named "dataplatform" (__main__.py); its resources after it.
    stateful = ("::dataplatform-redis", "::dataplatform-minio")
    urns = [
        r["urn"]
        for r in deployment["resources"]
        if r["type"] == "docker:index/container:Container" and r["urn"].endswith(stateful)
    ]
    check(len(urns) == 2, f"redis and minio containers not found in the state: {urns}")
    dev.up("replace redis and minio", replace=urns)
    dev.refresh_outputs()
    check(bool(dev.online_features("u00000001")), "features lost with the Redis container")
    latest = latest_model(dev.s3(), dev.outputs["buckets"]["models"])
    check(latest == version, "the model registry lost with the MinIO container")
    dev.report.ok("Redis and MinIO data kept across container replacement")
