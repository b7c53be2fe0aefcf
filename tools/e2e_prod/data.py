"""Prod step 8: a Redis key and a MinIO object outlive pod deletion and ``destroy`` + ``up``."""

from __future__ import annotations

import json
import time

from tools.e2e_common.report import check, timed, wait_for
from tools.e2e_prod.peer import peer
from tools.e2e_prod.stack import LABEL, ProdStack

MARKER_KEY = "e2e/marker"


def write_markers(prod: ProdStack) -> str:
    marker = f"marker-{prod.name}-{time.time_ns()}"
    with prod.redis_client() as client:
        client.set("e2e:marker", marker)
    with prod.s3() as s3:
        s3.put_object(Bucket=prod.outputs["buckets"]["raw"], Key=MARKER_KEY, Body=marker.encode())
    return marker


def markers_kept(prod: ProdStack, marker: str, after: str) -> None:
    def read() -> bool:
        with prod.redis_client() as client:
            kept = client.get("e2e:marker") or b""
            kept_redis = kept.decode() if isinstance(kept, bytes) else kept
        with prod.s3() as s3:
            kept_s3 = (
                s3.get_object(Bucket=prod.outputs["buckets"]["raw"], Key=MARKER_KEY)["Body"].read().decode()
            )
        check(kept_redis == marker, f"Redis marker lost after {after}: {kept_redis!r}")
        check(kept_s3 == marker, f"MinIO marker lost after {after}: {kept_s3!r}")
        return True

    wait_for(f"markers readable after {after}", read, timeout=120, interval=3)
    prod.report.ok(f"Redis key and MinIO object kept after {after}")


def evict(prod: ProdStack, workload: str) -> None:
    """Evicts the workload's pod as a node drain does, through the Eviction
    API, which refuses (429) what a PodDisruptionBudget forbids; then waits
    for its replacement."""
    [pod] = [
        p["metadata"]["name"]
        for p in prod.kube.json("get", "pods", "-n", prod.namespace, "-l", f"{LABEL}={workload}")["items"]
    ]
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": prod.namespace},
    }
    path = f"/api/v1/namespaces/{prod.namespace}/pods/{pod}/eviction"
    reply = prod.kube.run("create", "--raw", path, "-f", "-", stdin=json.dumps(eviction), check_rc=False)
    check('"Success"' in reply, f"evicting the single {workload} pod was refused: {reply[-300:]}")
    wait_for(
        f"{pod} gone",
        lambda: (
            not prod.kube.run("get", "pod", pod, "-n", prod.namespace, "--ignore-not-found", "-o", "name")
        ),
        timeout=120,
    )
    prod.kube.run("rollout", "status", f"deployment/{workload}", "-n", prod.namespace, "--timeout=180s")


def data(prod: ProdStack) -> None:
    marker = write_markers(prod)
    for workload in ("redis", "minio"):
        evict(prod, workload)
    prod.report.ok("the single Redis and MinIO pods evicted as a drain would: their budgets allow it")
    markers_kept(prod, marker, "evicting the Redis and MinIO pods")
    prod.marker = marker


def destroy_and_up(prod: ProdStack) -> None:
    claims = {c["metadata"]["name"] for c in prod.kube.json("get", "pvc", "-n", prod.namespace)["items"]}
    _, seconds = timed(prod.destroy)
    prod.time("destroy", seconds)
    left = leftovers(prod)
    prod.report.add("left after destroy", "; ".join(left) or "nothing")
    kept = {c["metadata"]["name"] for c in prod.kube.json("get", "pvc", "-n", prod.namespace)["items"]}
    check(claims <= kept, f"PVCs lost with destroy: {sorted(claims - kept)}")
    prod.report.ok(f"destroy kept the namespace and its {len(kept)} PVCs: {sorted(kept)}")
    if prod.with_peer:
        peer(prod)
    _, seconds = prod.up("after destroy")
    prod.time("up after destroy (PVCs reattached)", seconds)
    prod.refresh_outputs()
    if prod.marker:  # a run resumed at this step wrote none
        markers_kept(prod, prod.marker, "pulumi destroy + up")


def leftovers(prod: ProdStack) -> list[str]:
    found = []
    for namespace in (prod.namespace, prod.operator_namespace):
        listed = prod.kube.run(
            "get",
            "all,pvc,secret,configmap,networkpolicy,serviceaccount,role,rolebinding,ingress",
            "-n",
            namespace,
            "-o",
            "name",
            check_rc=False,
        )
        names = [
            n
            for n in listed.split()
            if "/" in n and not n.startswith(("configmap/kube-root-ca.crt", "serviceaccount/default"))
        ]
        exists = prod.kube.run("get", "namespace", namespace, "-o", "name", check_rc=False).startswith(
            "namespace/"
        )
        if exists:
            found.append(f"namespace {namespace}" + (f" with {', '.join(names)}" if names else " (empty)"))
    crds = prod.kube.run("get", "crd", "-o", "name").split()
    spark = [c for c in crds if "sparkoperator" in c]
    if spark:
        found.append(f"{len(spark)} Spark Operator CRDs (Helm keeps CRDs)")
    return found
