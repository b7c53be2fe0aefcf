"""Prod step 8: the streaming job, on by default: its driver pod deleted
while files land, then the batch job's agreement."""

from __future__ import annotations

from typing import Any

from dataplatform.services.spark.shared import STREAM_NAME
from tools.e2e_common.jobs_cli import check_succeeded, submit
from tools.e2e_common.report import check, wait_for
from tools.e2e_common.stores import redis_admin, s3_client
from tools.e2e_common.stream import (
    StreamStores,
    batch_agrees,
    killed_while_landing,
    refused_file_quarantined,
)
from tools.e2e_prod.stack import ProdStack

KNOWN_ENTITIES = 2000
APP_NAME_LABEL = "sparkoperator.k8s.io/app-name"


def application_state(prod: ProdStack) -> str:
    app = prod.kube.json("get", "sparkapplication", STREAM_NAME, "-n", prod.jobs_namespace)
    return str(((app.get("status") or {}).get("applicationState") or {}).get("state") or "")


def driver(prod: ProdStack) -> dict[str, Any] | None:
    pods = prod.kube.json(
        "get", "pods", "-n", prod.jobs_namespace, "-l", f"spark-role=driver,{APP_NAME_LABEL}={STREAM_NAME}"
    )["items"]
    running = [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    return running[0] if running else None


def streaming(prod: ProdStack) -> None:
    wait_for(
        f"SparkApplication {STREAM_NAME} RUNNING",
        lambda: application_state(prod) == "RUNNING" and driver(prod),
        timeout=300,
        interval=2.0,
        state=lambda: application_state(prod),
    )
    prod.report.ok(f"the stream runs by default in prod: SparkApplication {STREAM_NAME} RUNNING")
    credentials = prod.credentials()
    with (
        prod.kube.forward(prod.namespace, "svc/minio", 9000) as s3_port,
        prod.kube.forward(prod.namespace, "svc/redis", 6379) as redis_port,
    ):
        endpoint = f"http://127.0.0.1:{s3_port}"
        stores = StreamStores(
            s3=s3_client(endpoint, credentials),
            endpoint=endpoint,
            credentials=credentials,
            raw_bucket=prod.outputs["buckets"]["raw"],
            redis=redis_admin(redis_port, prod.outputs["redis_admin_password"]),
            report=prod.report,
            log=prod.log,
        )
        first_driver = driver(prod)
        assert first_driver is not None

        def running_on() -> bool:
            now = driver(prod)
            return now is not None and now["metadata"]["uid"] == first_driver["metadata"]["uid"]

        refused_file_quarantined(stores, prod.name, running_on)
        killed: dict[str, str] = {}

        def kill() -> None:
            pod = driver(prod)
            check(pod is not None, "no running driver pod to delete")
            assert pod is not None
            killed["uid"] = pod["metadata"]["uid"]
            prod.kube.run("delete", "pod", "-n", prod.jobs_namespace, pod["metadata"]["name"], "--wait=false")

        def restarted() -> bool:
            pod = driver(prod)
            return (
                pod is not None
                and pod["metadata"]["uid"] != killed["uid"]
                and application_state(prod) == "RUNNING"
            )

        landed = killed_while_landing(stores, kill, restarted, known_entities=KNOWN_ENTITIES)

        def run_features() -> str:
            returncode, seconds = submit(prod, "features")
            check_succeeded(prod, "features", returncode)
            prod.time("job features (agreement)", seconds)
            return prod.last_output

        batch_agrees(stores, landed, run_features)
