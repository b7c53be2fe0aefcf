"""Prod step 7: a pod deleted under load, an unloadable model kept out of service, the API key rotated."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from tools.e2e_common.gateway import PREDICT, auth, entity
from tools.e2e_common.jobs_cli import MODEL
from tools.e2e_common.report import check, wait_for
from tools.e2e_common.web import http
from tools.e2e_prod.stack import LABEL, ProdStack


def inference_pods(prod: ProdStack) -> list[dict[str, Any]]:
    return list(prod.kube.json("get", "pods", "-n", prod.namespace, "-l", f"{LABEL}=inference")["items"])


def resilience(prod: ProdStack, version: str) -> None:
    headers = auth(prod.credentials()["gateway_api_key"])
    body = entity("u00000002")
    with prod.kube.forward(prod.namespace, "svc/gateway", 80) as port:
        url = f"http://127.0.0.1:{port}{PREDICT}"
        statuses: collections.Counter[int] = collections.Counter()
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    statuses[http("POST", url, body, headers, timeout=10).status] += 1
                except OSError:
                    statuses[-1] += 1  # no answer at all: reported beside the 5xx
                time.sleep(0.02)

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(2)
            victim = inference_pods(prod)[0]["metadata"]["name"]
            prod.kube.run("delete", "pod", victim, "-n", prod.namespace, "--wait=true")
            prod.kube.run("rollout", "status", "deployment/inference", "-n", prod.namespace, "--timeout=180s")
            time.sleep(3)
        finally:
            stop.set()
            worker.join()
        errors = sum(n for s, n in statuses.items() if s >= 500 or s < 0)
        prod.report.add(
            "predictions while an inference pod was deleted",
            f"{sum(statuses.values())} requests, {errors} 5xx ({dict(statuses)})",
        )
        check(statuses[200] > 0, f"no prediction answered while a pod was deleted: {dict(statuses)}")
        # The pod is taken out of the Service before it stops (its preStop
        # wait), so no request reaches a closing pod. 429s are the rate
        # limit this test sets low for the burst step.
        check(errors == 0, f"{errors} predictions failed (5xx or no answer) while a pod was deleted")
        check(
            set(statuses) <= {200, 429},
            f"answers other than 200/429 while a pod was deleted: {dict(statuses)}",
        )
        prod.report.ok(f"an inference pod deleted: {statuses[200]} predictions 200, 0 5xx, none unanswered")
    unloadable_model(prod, version)
    rotate_api_key(prod)


def unloadable_model(prod: ProdStack, version: str) -> None:
    """LATEST names a version that cannot load: pods already serving keep
    their model and stay Ready; a new pod cannot load it and is not Ready,
    and liveness (/healthz) does not restart it."""
    buckets = prod.outputs["buckets"]
    with prod.s3() as s3:
        s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/broken/model.onnx", Body=b"not a model")
        s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/broken/metadata.json", Body=b"{}")
        s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/LATEST", Body=b"broken\n")
    try:
        before = {p["metadata"]["name"] for p in inference_pods(prod)}
        victim = sorted(before)[0]
        prod.kube.run("delete", "pod", victim, "-n", prod.namespace, "--wait=true")
        new = wait_for(
            "a replacement inference pod",
            lambda: [p for p in inference_pods(prod) if p["metadata"]["name"] not in before],
            timeout=60,
        )[0]["metadata"]["name"]
        time.sleep(45)
        pod = prod.kube.json("get", "pod", new, "-n", prod.namespace)
        ready = next(c for c in pod["status"].get("conditions", []) if c["type"] == "Ready")["status"]
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        check(ready == "False", f"{new} is Ready with an unloadable model")
        check(restarts == 0, f"{new} was restarted {restarts} times: liveness follows readiness")
        with prod.kube.forward(prod.namespace, f"pod/{new}", 3000) as port:
            reason = http("GET", f"http://127.0.0.1:{port}/readyz").body.decode()[:300]
            live = http("GET", f"http://127.0.0.1:{port}/healthz").status
        check(live == 200, f"{new} /healthz answered {live}")
        prod.report.ok(
            f"unloadable model: new pod not Ready for 45 s, 0 restarts, /healthz 200, /readyz: {reason}"
        )
    finally:
        with prod.s3() as s3:
            s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/LATEST", Body=f"{version}\n".encode())
    prod.kube.run("rollout", "status", "deployment/inference", "-n", prod.namespace, "--timeout=240s")
    prod.report.ok("LATEST restored: every inference pod Ready again")


def rotate_api_key(prod: ProdStack) -> None:
    old = prod.credentials()["gateway_api_key"]
    gateway = dict(prod.config["gateway"])
    gateway["apiKeyRotation"] = int(gateway.get("apiKeyRotation", 0)) + 1
    prod.config["gateway"] = gateway
    assert prod.stack is not None
    prod.stack.set_all_config(prod.engine_config())
    _, seconds = prod.up("gateway API key rotated")
    prod.refresh_outputs()
    new = prod.credentials()["gateway_api_key"]
    check(new != old, "the API key did not change")
    body = entity("u00000001")
    with prod.kube.forward(prod.namespace, "svc/gateway", 80) as port:
        url = f"http://127.0.0.1:{port}{PREDICT}"
        old_status = http("POST", url, body, auth(old)).status
        new_status = http("POST", url, body, auth(new)).status
    check(
        old_status == 401 and new_status == 200,
        f"after rotation: old key {old_status}, new key {new_status}",
    )
    prod.time("API key rotated through config: up, pods rolled", seconds)
    prod.report.ok("rotated API key: old key 401, new key 200, no manual step")
