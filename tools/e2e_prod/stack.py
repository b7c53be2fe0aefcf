"""The prod run's state: stack, configuration, kubectl, its stores via port-forwards, step timings."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import redis
import yaml
from pulumi import automation as auto
from pulumi.automation import OpType

from cluster.certs import certificate_paths, self_signed_command
from cluster.settings import cluster_settings
from tools.e2e_common.pipeline import latest_model
from tools.e2e_common.stack import EphemeralStack, engine_config
from tools.e2e_common.stores import redis_admin, s3_client
from tools.e2e_prod.kube import Kube
from tools.harness import merge_config, stack_config
from tools.repo import ROOT

OVERRIDES_FILE = ROOT / "cluster" / "prod-stack.yaml"
LABEL = "app.kubernetes.io/name"
INGRESS_HOST_KEY = ("gateway", "ingress", "host")
# What this test adds to Pulumi.prod.yaml + cluster/prod-stack.yaml: alerts
# within seconds rather than minutes, and a rate limit a burst can cross.
TEST_OVERRIDES: dict[str, Any] = {
    "monitoring": {"scrapeInterval": "5s", "evaluationInterval": "5s", "alertFor": {"ServiceDown": "10s"}},
    "gateway": {"rateLimit": 1500, "rateWindowSeconds": 60},
}
PROBE_IMAGE = "inference"


def log(message: str) -> None:
    print(f"[e2e-prod {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_overrides() -> dict[str, Any]:
    data = yaml.safe_load(OVERRIDES_FILE.read_text()) or {}
    operator = data.get("sparkOperator", {})
    if "chartPath" in operator:
        operator["chartPath"] = os.path.expanduser(operator["chartPath"])
    return data


def get_in(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = config
    for key in path:
        value = value[key]
    return value


class ProdStack(EphemeralStack):
    def __init__(self, name: str, rows: int, build: bool, with_peer: bool = False) -> None:
        super().__init__(name, log)
        self.with_peer = with_peer
        self.rows = rows
        self.build = build
        self.cluster = cluster_settings(
            "ADMIN_KUBECONFIG",
            "CLUSTER_BIN",
            "CLUSTER_REGISTRY",
            "CLUSTER_INGRESS_HTTPS_PORT",
            "CLUSTER_INGRESS_HTTP_PORT",
        )
        os.environ["PATH"] = f"{self.cluster['CLUSTER_BIN']}{os.pathsep}{os.environ['PATH']}"
        os.environ["KUBECONFIG"] = self.cluster["ADMIN_KUBECONFIG"]
        self.kube = Kube(self.cluster["ADMIN_KUBECONFIG"], self.out)
        self.config = merge_config(stack_config("prod"), merge_config(load_overrides(), TEST_OVERRIDES))
        self.namespace = get_in(self.config, ("kubernetes", "namespace"))
        kubernetes = self.config.get("kubernetes", {})
        self.jobs_namespace = kubernetes.get("jobsNamespace") or f"{self.namespace}-jobs"
        self.operator_namespace = self.config.get("sparkOperator", {}).get("namespace", "spark-operator")
        self.host = get_in(self.config, INGRESS_HOST_KEY)
        self.tls_secret = get_in(self.config, ("gateway", "ingress", "tlsSecretName"))
        self.timings: list[tuple[str, float]] = []
        # This run's certificate for the Ingress, given to the platform as
        # PEM (the platform makes the Secret); the test trusts only it.
        self.tls_dir = Path(tempfile.mkdtemp(prefix="e2e-prod-tls-"))
        cert, key = certificate_paths(self.tls_dir)
        subprocess.run(self_signed_command(self.host, cert, key, days=2), check=True, capture_output=True)
        pem = {"tlsCertificate": cert.read_text(), "tlsPrivateKey": key.read_text()}
        self.config = merge_config(self.config, {"gateway": {"ingress": pem}})
        # What one step leaves for a later one.
        # Each job's executor pods as counted over its run, changes only.
        self.executor_counts: dict[str, list[int]] = {}
        self.csv_uri = ""
        self.marker = ""

    def time(self, what: str, seconds: float) -> None:
        self.timings.append((what, seconds))
        self.report.add(what, f"{seconds:.1f} s")

    @staticmethod
    def changes(summary: Mapping[OpType, int] | None) -> dict[OpType, int]:
        # A read (the API server's EndpointSlice) looks at the cluster and
        # changes nothing.
        return {k: v for k, v in (summary or {}).items() if k not in ("same", "read") and v}

    def engine_config(self) -> dict[str, auto.ConfigValue]:
        # The gateway's section holds the Ingress's private key.
        return engine_config(self.config, secret={"gateway"})

    def image(self, name: str) -> str:
        return str(self.config["images"][name])

    @contextlib.contextmanager
    def redis_client(self) -> Iterator[redis.Redis]:
        with self.kube.forward(self.namespace, "svc/redis", 6379) as port:
            yield redis_admin(port, self.outputs["redis_admin_password"])

    @contextlib.contextmanager
    def s3(self) -> Iterator[Any]:
        creds = self.credentials()
        with self.kube.forward(self.namespace, "svc/minio", 9000) as port:
            yield s3_client(f"http://127.0.0.1:{port}", creds)

    def live_model(self) -> str:
        with self.s3() as s3:
            return latest_model(s3, self.outputs["buckets"]["models"])
