"""Prod step 9 (``--peer``): the same manifests through ``kubectl apply --server-side`` and ``wait``."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tools.e2e_common.report import Failure
from tools.e2e_prod.stack import ProdStack
from tools.harness import merge_config

# How long the peer may take before it is reported as not measured; the
# first up it is compared with takes under a minute.
PEER_WAIT_SECONDS = 180

CLUSTER_SCOPED_KINDS = (
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)


def peer(prod: ProdStack) -> None:
    """The same objects, rendered by the engine (the operator's chart
    included), applied with ``kubectl apply --server-side`` and awaited
    with ``kubectl wait``, in namespaces of their own; then deleted."""
    from tools import render

    namespace, operator_namespace = f"{prod.namespace}-peer", f"{prod.operator_namespace}-peer"
    # This run's configuration, pinned images included, in other namespaces.
    extra = merge_config(
        prod.config,
        {"kubernetes": {"namespace": namespace}, "sparkOperator": {"namespace": operator_namespace}},
    )
    with tempfile.TemporaryDirectory() as directory:
        rendered = render.render(
            Path(directory) / "out", install_operator=True, overrides=extra, on_output=prod.out
        )
        documents = [m.obj for m in rendered.manifests]
        first = [d for d in documents if d["kind"] in ("Namespace", "CustomResourceDefinition")]
        # Spark's custom resources go through the operator's webhook, so
        # they wait for it, as Pulumi's do through their dependency.
        spark = [d for d in documents if str(d.get("apiVersion", "")).startswith("sparkoperator.k8s.io/")]
        rest = [d for d in documents if d not in first and d not in spark]
        start = time.monotonic()

        def apply(group: list[dict[str, Any]]) -> None:
            if group:
                prod.kube.run(
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    "-f",
                    "-",
                    stdin="\n---\n".join(yaml.safe_dump(d) for d in group),
                )

        limit = f"--timeout={PEER_WAIT_SECONDS}s"
        try:
            apply(first)
            apply(rest)
            prod.kube.run(
                "wait", "--for=condition=Available", "deployment", "--all", "-n", operator_namespace, limit
            )
            apply(spark)
            prod.kube.run("wait", "--for=condition=Available", "deployment", "--all", "-n", namespace, limit)
            prod.kube.run("wait", "--for=condition=Complete", "job", "--all", "-n", namespace, limit)
            seconds = time.monotonic() - start
            prod.time("peer: kubectl apply --server-side + kubectl wait, same manifests", seconds)
        except Failure as exc:
            # A measurement, not a check of the platform: the stack's own
            # objects passed every check before this step. Seen on the
            # local cluster: in the peer's new namespace, a pod's first
            # connection to another stayed blocked for minutes.
            listed = prod.kube.run("get", "pods", "-n", namespace, "--no-headers", check_rc=False)
            rows = [line.split() for line in listed.splitlines()]
            waiting = [row[0] for row in rows if len(row) > 1 and row[1].startswith("0/")]
            prod.report.add(
                "peer: not measured",
                f"not ready within {PEER_WAIT_SECONDS} s ({', '.join(waiting) or str(exc)[-200:]})",
            )
        # The operator's own objects go while it still runs to clear
        # their finalizers; then what no namespace holds; then the rest.
        if spark:
            prod.kube.run(
                "delete",
                "--ignore-not-found",
                "--wait=true",
                "-f",
                "-",
                stdin="\n---\n".join(yaml.safe_dump(d) for d in spark),
            )
        # The render writes a namespace even on cluster-scoped objects:
        # pick them by kind. They would clash with the stack's own.
        for d in rest:
            if d["kind"] in CLUSTER_SCOPED_KINDS:
                prod.kube.run("delete", d["kind"].lower(), d["metadata"]["name"], "--ignore-not-found")
        prod.kube.run("delete", "namespace", namespace, operator_namespace, "--wait=true", "--timeout=300s")
