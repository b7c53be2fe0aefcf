"""Prod step 1: images pushed and pinned by digest, the first ``up`` ready, then no changes."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from typing import Any

from pulumi import automation as auto
from pulumi.automation import OpType

from cluster.certs import certificate_paths
from cluster.settings import cluster_settings
from tools.e2e_common.report import Failure, check, timed
from tools.e2e_common.stack import Timeline
from tools.e2e_prod.stack import ProdStack
from tools.repo import ROOT

IMAGES_BUILT = (
    "spark",
    "minio",
    "gateway",
    "inference",
    "redis-standin",
    "prometheus-standin",
    "alertmanager-standin",
    "spark-operator",
)


def push_pinned(config: dict[str, Any], build: bool) -> tuple[dict[str, Any], list[str]]:
    """``config`` with every image the cluster pulls pushed to its registry
    and pinned by the pushed digest (tags move as code changes; the cluster
    would keep running what it pulled first under a tag); and the pinned
    names. Builds the images first when ``build``."""
    if build:
        subprocess.run(["bash", str(ROOT / "scripts" / "build-images.sh"), *IMAGES_BUILT], check=True)
    version = config.get("version") or "0.1.0"
    registry = str(config["imageRegistry"]).rstrip("/")
    configured = {name: str(ref) for name, ref in config.get("images", {}).items()}
    configured["spark-operator"] = str(config["sparkOperator"]["image"])
    for name in ("spark", "minio", "gateway", "inference"):
        configured.setdefault(name, f"{registry}/{name}:{version}")
    # Pushed refs are the local dataplatform/<name>:<tag> under the registry.
    local = [f"dataplatform/{ref[len(registry) + 1 :]}" for ref in configured.values()]
    pushed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "push-images.sh"), registry, *local],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    digests = dict(line.split("@", 1) for line in pushed)
    pinned = {name: f"{ref}@{digests[ref]}" for name, ref in configured.items()}
    operator = {**config["sparkOperator"], "image": pinned.pop("spark-operator")}
    config = {**config, "sparkOperator": operator, "images": {**config.get("images", {}), **pinned}}
    return config, [*sorted(pinned), "spark-operator"]


def images(prod: ProdStack) -> None:
    start = time.monotonic()
    prod.config, pinned = push_pinned(prod.config, prod.build)
    prod.report.add("images pinned by digest", ", ".join(pinned))
    prod.time("images built and pushed to the cluster's registry", time.monotonic() - start)
    start = time.monotonic()
    pulled = pull_to_node(pinned_refs(prod.config))
    prod.time(f"{pulled} images pulled onto the node", time.monotonic() - start)


def pinned_refs(config: dict[str, Any]) -> list[str]:
    """Every image reference the stack deploys, as pinned by ``push_pinned``."""
    refs = [str(ref) for ref in config.get("images", {}).values()]
    return sorted({*refs, str(config["sparkOperator"]["image"])})


def pull_to_node(refs: list[str]) -> int:
    """Pulls ``refs`` into the node's containerd before anything is timed,
    so the first ``up`` and its peer (``--peer``, after ``destroy``) start
    from the same node: every image already there. Otherwise the first
    ``up`` alone would wait for the pulls."""
    socket = cluster_settings("CONTAINERD_SOCKET")["CONTAINERD_SOCKET"]
    for ref in refs:
        subprocess.run(
            ["ctr", "--address", socket, "--namespace", "k8s.io", "images", "pull", "--plain-http", ref],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return len(refs)


def deploy(prod: ProdStack) -> None:
    prod.stack = auto.create_or_select_stack(stack_name=prod.name, work_dir=str(ROOT))
    prod.stack.set_all_config(prod.engine_config())
    # The project's policy pack on a preview against the live cluster, as a
    # pull request runs it: a mandatory violation fails the preview. The up
    # then runs without it, as `kubectl apply`, its peer, does.
    try:
        preview, seconds = timed(
            lambda: prod.stack.preview(  # type: ignore[union-attr]
                policy_packs=[str(ROOT / "policy")], on_output=prod.out, color="never"
            )
        )
    except auto.CommandError as exc:
        raise Failure(f"pulumi preview with the policy pack failed:\n{str(exc)[-3000:]}") from None
    prod.time("preview with the policy pack", seconds)
    check("Policies:" in preview.stdout, "the policy pack did not run on the preview")
    advisories = sorted(set(re.findall(r"\[advisory\]\s+(\S+)", preview.stdout)))
    prod.report.ok(
        f"the policy pack ran on a live preview: no mandatory violation; advisories: {advisories or 'none'}"
    )
    timeline = Timeline()
    result, seconds = prod.up("first", on_event=timeline)
    created = (result.summary.resource_changes or {}).get(OpType.CREATE, 0)
    prod.report.add("resources created", str(created))
    prod.time("first up, every object awaited ready", seconds)
    prod.report.add("first up: CLI and program start", f"{timeline.first_step():.1f} s")
    prod.report.add("first up: the last resources done", "; ".join(timeline.slowest()))
    prod.refresh_outputs()
    for namespace in (prod.namespace, prod.operator_namespace):
        deployments = prod.kube.json("get", "deployments", "-n", namespace)["items"]
        unready = [
            d["metadata"]["name"]
            for d in deployments
            if (d["status"].get("readyReplicas") or 0) < d["spec"]["replicas"]
        ]
        check(bool(deployments) and not unready, f"{namespace}: deployments not ready: {unready}")
        prod.report.ok(f"{namespace}: {len(deployments)} Deployments ready after up")
    jobs = prod.kube.json("get", "jobs", "-n", prod.namespace)["items"]
    incomplete = [j["metadata"]["name"] for j in jobs if not j["status"].get("succeeded")]
    check(not incomplete, f"jobs not complete after up: {incomplete}")
    prod.report.ok(f"{len(jobs)} Job(s) complete after up")
    tls_secret_made_by_the_platform(prod)


def tls_secret_made_by_the_platform(prod: ProdStack) -> None:
    """The Ingress's TLS Secret is one of the stack's resources, holding
    this run's certificate."""
    assert prod.stack is not None
    state = prod.stack.export_stack().deployment
    made = [
        r
        for r in state.get("resources", [])
        if r.get("type") == "kubernetes:core/v1:Secret"
        and (r.get("outputs") or {}).get("metadata", {}).get("name") == prod.tls_secret
    ]
    check(len(made) == 1, f"the stack holds {len(made)} Secret(s) named {prod.tls_secret}, expected 1")
    secret = prod.kube.json("get", "secret", prod.tls_secret, "-n", prod.namespace)
    served = base64.b64decode(secret["data"]["tls.crt"]).decode()
    check(secret["type"] == "kubernetes.io/tls", f"{prod.tls_secret}: type {secret['type']}")
    check(served == certificate_paths(prod.tls_dir)[0].read_text(), f"{prod.tls_secret}: another certificate")
    prod.report.ok(f"TLS Secret {prod.tls_secret} made by the platform from the given certificate")


def no_op(prod: ProdStack) -> None:
    result, seconds = prod.up("no-op")
    changes = prod.changes(result.summary.resource_changes)
    check(not changes, f"second up changed resources: {changes}")
    prod.time("no-op up (0 changes)", seconds)
    # --refresh: read every object back from the cluster first, so the
    # preview compares the program with the cluster, not with the state.
    stack = prod.stack
    assert stack is not None
    preview, seconds = timed(lambda: stack.preview(on_output=prod.out, color="never", refresh=True))
    changes = prod.changes(preview.change_summary)
    check(not changes, f"preview --refresh against the live cluster shows changes: {changes}")
    prod.time("preview --refresh against the live cluster (0 changes)", seconds)
