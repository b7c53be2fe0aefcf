#!/usr/bin/env python3
"""Smoke test of the local cluster (`make cluster-test`).

Runs against the cluster `make cluster` started and shows, each as a check
with its duration:

- the node is Ready;
- a Deployment behind a Service answers by its DNS name from another pod;
- an Ingress with TLS (a self-signed certificate made here) routes a host
  name to that Service, tested from the host with curl --resolve;
- an image pushed to the local registry is pulled by a pod;
- a PVC of the default StorageClass binds, and its data outlives the pod;
- an HPA reads CPU metrics (metrics-server);
- a privileged pod is rejected in a namespace enforcing the "restricted"
  Pod Security level;
- a default-deny NetworkPolicy blocks the client -> Service flow and an
  allow policy reopens it.

The test's own pods meet the restricted level. Everything lives in one
namespace that is deleted at the end (also after a failure, unless --keep).
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Beside this file: the script runs as `python3 cluster/smoke_test.py`.
from certs import certificate_paths, self_signed_command
from settings import cluster_settings

NAMESPACE = "dp-smoke"
HOST = "smoke.dataplatform.test"
WEB_URL = f"http://web.{NAMESPACE}.svc.cluster.local/"


SETTINGS = cluster_settings(
    "ADMIN_KUBECONFIG",
    "CLUSTER_BIN",
    "CLUSTER_REGISTRY",
    "CLUSTER_INGRESS_HTTPS_PORT",
    "CLUSTER_IMAGES",
    "CLUSTER_IMAGE_DIR",
)
KUBECTL = [
    f"{SETTINGS['CLUSTER_BIN']}/kubectl",
    "--kubeconfig",
    SETTINGS["ADMIN_KUBECONFIG"],
]
SMOKE_IMAGE = "dataplatform-cluster/smoke:1"


class CheckFailed(Exception):
    pass


def run(
    args: list[str], *, input: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise CheckFailed(
            f"{' '.join(args[:6])}... exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def kubectl(
    *args: str, input: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return run([*KUBECTL, *args], input=input, check=check, timeout=timeout)


def apply(obj: dict[str, Any] | list[dict[str, Any]]) -> None:
    items = obj if isinstance(obj, list) else [obj]
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def get_json(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Polls probe until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = probe()
            if result:
                return result
        except (CheckFailed, subprocess.TimeoutExpired, KeyError, IndexError) as err:
            last_error = str(err)
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" ({last_error})" if last_error else "")
            )
        time.sleep(interval)


# --- the test's workload -------------------------------------------------------

RESTRICTED_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def manifest(api_version: str, kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """An object named ``name`` in the test's namespace; ``metadata`` adds labels or annotations."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE, **metadata},
        "spec": spec,
    }


def container(name: str, image: str, command: list[str], **extra: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        "resources": {"requests": {"cpu": "20m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    }
    spec.update(extra)
    return spec


def pod(
    name: str, containers: list[dict[str, Any]], labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return manifest(
        "v1",
        "Pod",
        name,
        {
            "securityContext": RESTRICTED_POD_SECURITY,
            "containers": containers,
            "terminationGracePeriodSeconds": 1,
            **spec,
        },
        labels=labels or {},
    )


def client_get(url: str, timeout: str = "3s") -> subprocess.CompletedProcess[str]:
    return kubectl(
        "-n",
        NAMESPACE,
        "exec",
        "client",
        "--",
        "/usr/local/bin/smoke",
        "get",
        "-timeout",
        timeout,
        url,
        check=False,
        timeout=30,
    )


def wait_pod_phase(name: str, phases: set[str], timeout: float) -> str:
    def probe() -> str | None:
        phase = get_json("-n", NAMESPACE, "pod", name)["status"].get("phase")
        if phase == "Failed" and "Failed" not in phases:
            raise CheckFailed(
                f"pod {name} failed: {kubectl('-n', NAMESPACE, 'logs', name, check=False).stdout.strip()}"
            )
        return phase if phase in phases else None

    return str(wait_for(f"pod {name} to be {'/'.join(sorted(phases))}", probe, timeout))


# --- checks ----------------------------------------------------------------------


def check_node_ready() -> str:
    nodes = get_json("nodes")["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    if not ready:
        raise CheckFailed("no node is Ready")
    version = nodes[0]["status"]["nodeInfo"]["kubeletVersion"]
    return f"{', '.join(ready)} Ready, kubelet {version}"


def setup_namespace() -> str:
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
    apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    # Pods may be created only once the namespace's service account exists.
    wait_for(
        "the default service account",
        lambda: kubectl("-n", NAMESPACE, "get", "serviceaccount", "default", check=False).returncode == 0,
        30,
        0.3,
    )
    return f"{NAMESPACE} created"


def check_service_dns() -> str:
    apply(
        [
            manifest(
                "apps/v1",
                "Deployment",
                "web",
                {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "securityContext": RESTRICTED_POD_SECURITY,
                            "terminationGracePeriodSeconds": 1,
                            "containers": [
                                container(
                                    "web",
                                    SMOKE_IMAGE,
                                    ["/usr/local/bin/smoke", "serve", "-addr", ":8080"],
                                    ports=[{"containerPort": 8080, "name": "http"}],
                                    readinessProbe={
                                        "httpGet": {"path": "/healthz", "port": "http"},
                                        "periodSeconds": 1,
                                    },
                                )
                            ],
                        },
                    },
                },
            ),
            manifest(
                "v1",
                "Service",
                "web",
                {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "name": "http"}]},
            ),
            pod("client", [container("client", SMOKE_IMAGE, ["sleep", "3600"])], labels={"role": "client"}),
        ]
    )
    kubectl("-n", NAMESPACE, "rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
    wait_pod_phase("client", {"Running"}, 120)
    answer = wait_for(
        f"{WEB_URL} from the client pod",
        lambda: (r := client_get(WEB_URL)).returncode == 0 and r.stdout.strip(),
        60,
    )
    return f"client pod -> {WEB_URL}: {answer!r}"


def check_ingress_tls() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = certificate_paths(Path(tmp))
        run(self_signed_command(HOST, cert, key, days=1))
        kubectl("-n", NAMESPACE, "create", "secret", "tls", "web-tls", f"--cert={cert}", f"--key={key}")
        apply(
            manifest(
                "networking.k8s.io/v1",
                "Ingress",
                "web",
                {
                    "ingressClassName": "traefik",
                    "tls": [{"hosts": [HOST], "secretName": "web-tls"}],
                    "rules": [
                        {
                            "host": HOST,
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                    }
                                ]
                            },
                        }
                    ],
                },
                annotations={
                    "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
                    "traefik.ingress.kubernetes.io/router.tls": "true",
                },
            )
        )
        port = SETTINGS["CLUSTER_INGRESS_HTTPS_PORT"]
        # The certificate is the test's own: curl must verify it against
        # exactly that, so the answer proves the Ingress's TLS secret is served.
        curl = [
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            str(cert),
            "--resolve",
            f"{HOST}:{port}:127.0.0.1",
            f"https://{HOST}:{port}/",
        ]
        body = wait_for(
            f"https://{HOST} through the ingress",
            lambda: (
                (r := run(curl, check=False)).returncode == 0
                and r.stdout.startswith("hello from web-")
                and r.stdout.strip()
            ),
            60,
        )
    return f"curl https://{HOST} (127.0.0.1:{port}, verified against the test's certificate): {body!r}"


def check_registry_pull() -> str:
    registry = SETTINGS["CLUSTER_REGISTRY"]
    tag = f"{registry}/smoke/registry-check:{secrets.token_hex(4)}"
    if run(["docker", "image", "inspect", SMOKE_IMAGE], check=False).returncode != 0:
        # Built earlier and pruned from the engine since: the archive has it.
        run(["docker", "load", "-i", SETTINGS["CLUSTER_IMAGE_DIR"] + "/images.tar"], timeout=300)
    run(["docker", "tag", SMOKE_IMAGE, tag])
    try:
        run(["docker", "push", "-q", tag], timeout=180)
    finally:
        run(["docker", "rmi", tag], check=False)
    apply(
        pod(
            "from-registry",
            [
                container(
                    "app",
                    tag,
                    ["/usr/local/bin/smoke", "get", "-timeout", "10s", WEB_URL],
                    imagePullPolicy="Always",
                )
            ],
            restartPolicy="Never",
        )
    )
    wait_pod_phase("from-registry", {"Succeeded"}, 120)
    status = get_json("-n", NAMESPACE, "pod", "from-registry")["status"]["containerStatuses"][0]
    image_id = status["imageID"]
    if not image_id.startswith(f"{registry}/smoke/registry-check@sha256:"):
        raise CheckFailed(f"the pod's image did not come from {registry}: {image_id}")
    return f"pushed {tag}; pod pulled {image_id.split('@')[0]}@{image_id.split('@')[1][:19]}... and ran"


def check_pvc() -> str:
    token = secrets.token_hex(8)
    apply(
        manifest(
            "v1",
            "PersistentVolumeClaim",
            "data",
            {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
        )
    )
    volume: dict[str, Any] = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    mount: dict[str, Any] = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    apply(
        pod(
            "writer",
            [container("writer", SMOKE_IMAGE, ["sh", "-c", f"echo {token} > /data/token"], **mount)],
            restartPolicy="Never",
            **volume,
        )
    )
    wait_pod_phase("writer", {"Succeeded"}, 120)
    pvc = get_json("-n", NAMESPACE, "pvc", "data")
    if pvc["status"].get("phase") != "Bound":
        raise CheckFailed(f"PVC data is {pvc['status'].get('phase')}, not Bound")
    storage_class = pvc["spec"].get("storageClassName")
    kubectl("-n", NAMESPACE, "delete", "pod", "writer", "--wait=true")
    apply(
        pod(
            "reader",
            [container("reader", SMOKE_IMAGE, ["cat", "/data/token"], **mount)],
            restartPolicy="Never",
            **volume,
        )
    )
    wait_pod_phase("reader", {"Succeeded"}, 120)
    read = kubectl("-n", NAMESPACE, "logs", "reader").stdout.strip()
    if read != token:
        raise CheckFailed(f"the new pod read {read!r} from the volume, expected {token!r}")
    volume_name = pvc["spec"]["volumeName"]
    return f"PVC bound ({storage_class}, {volume_name}); a new pod read back what the deleted one wrote"


def check_hpa() -> str:
    apply(
        manifest(
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "web",
            {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        )
    )

    def current() -> str | None:
        status = get_json("-n", NAMESPACE, "hpa", "web")["status"]
        for metric in status.get("currentMetrics") or []:
            value = metric.get("resource", {}).get("current", {})
            if "averageUtilization" in value:
                return f"{value['averageUtilization']}% of requested CPU ({value.get('averageValue')})"
        return None

    reading = wait_for("the HPA's first CPU reading", current, 180, 3)
    return f"HPA web reads {reading}"


def check_pod_security() -> str:
    privileged = manifest(
        "v1",
        "Pod",
        "privileged",
        {
            "containers": [
                {
                    "name": "root",
                    "image": SMOKE_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "60"],
                    "securityContext": {"privileged": True},
                }
            ]
        },
    )
    result = kubectl("create", "-f", "-", input=json.dumps(privileged), check=False)
    if result.returncode == 0:
        kubectl("-n", NAMESPACE, "delete", "pod", "privileged", "--wait=false", check=False)
        raise CheckFailed("a privileged pod was admitted in a namespace enforcing restricted")
    if "violates PodSecurity" not in result.stderr:
        raise CheckFailed(
            f"the privileged pod was rejected, but not by Pod Security: {result.stderr.strip()}"
        )
    reason = result.stderr.strip().split('violates PodSecurity "restricted:latest": ')[-1]
    return f"privileged pod rejected: {reason[:110]}"


def network_policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return manifest("networking.k8s.io/v1", "NetworkPolicy", name, spec)


def check_network_policy() -> str:
    apply(network_policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    t_deny = time.monotonic()
    blocked = wait_for("the flow to be blocked", lambda: client_get(WEB_URL, "2s").returncode != 0, 60)
    # Blocked once may be a blip: it must stay blocked.
    for _ in range(3):
        again = client_get(WEB_URL, "2s")
        if again.returncode == 0:
            raise CheckFailed(f"the flow was open again under default-deny: {again.stdout.strip()}")
    denied_after = time.monotonic() - t_deny
    error = next(
        (line for line in client_get(WEB_URL, "2s").stderr.splitlines() if line.startswith("smoke get:")),
        "request failed",
    ).removeprefix("smoke get: ")
    apply(
        network_policy(
            "web-from-client",
            {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                        "ports": [{"port": 8080}],
                    }
                ],
            },
        )
    )
    t_allow = time.monotonic()
    wait_for("the allow policy to reopen the flow", lambda: client_get(WEB_URL, "2s").returncode == 0, 60)
    return (
        (
            f"default-deny blocked client -> web within {denied_after:.1f}s ({error[:120]}); "
            f"allow policy reopened it within {time.monotonic() - t_allow:.1f}s"
        )
        if blocked
        else ""
    )


def dump_diagnostics() -> None:
    for args in (
        ["get", "pods", "-A", "-o", "wide"],
        ["-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp"],
    ):
        result = kubectl(*args, check=False)
        print(f"--- kubectl {' '.join(args)}", file=sys.stderr)
        print((result.stdout + result.stderr)[-3000:], file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help=f"leave namespace {NAMESPACE} in place")
    args = parser.parse_args()
    if not Path(SETTINGS["ADMIN_KUBECONFIG"]).exists():
        print(
            f"error: no cluster ({SETTINGS['ADMIN_KUBECONFIG']} is missing): run make cluster",
            file=sys.stderr,
        )
        return 1
    if SETTINGS["CLUSTER_IMAGES"] != "local":
        print(
            "error: the smoke test uses the locally built smoke image (CLUSTER_IMAGES=local)", file=sys.stderr
        )
        return 1

    checks: list[tuple[str, Callable[[], str]]] = [
        ("node Ready", check_node_ready),
        ("namespace (Pod Security: restricted)", setup_namespace),
        ("Service by DNS name from another pod", check_service_dns),
        ("Ingress with TLS from the host", check_ingress_tls),
        ("image from the local registry", check_registry_pull),
        ("PVC binds, data outlives the pod", check_pvc),
        ("HPA reads metrics", check_hpa),
        ("privileged pod rejected (restricted)", check_pod_security),
        ("NetworkPolicy blocks, then allows", check_network_policy),
    ]
    start = time.monotonic()
    failed = False
    for name, check in checks:
        t = time.monotonic()
        try:
            detail = check()
        except (CheckFailed, subprocess.TimeoutExpired) as err:
            print(f"FAIL {name} ({time.monotonic() - t:.1f}s): {err}", flush=True)
            failed = True
            break
        print(f"ok   {name} ({time.monotonic() - t:.1f}s): {detail}", flush=True)
    if failed:
        dump_diagnostics()
    if not args.keep:
        kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False, timeout=180)
    print(f"{'FAILED' if failed else 'passed'}: cluster smoke test in {time.monotonic() - start:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
