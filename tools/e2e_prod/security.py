"""Prod steps 2 and 3: Pod Security "restricted" on both namespaces; NetworkPolicies from probe pods."""

from __future__ import annotations

import json

from jobs.conventions import APP_LABEL
from tools.e2e_common.report import check, wait_for
from tools.e2e_prod.stack import LABEL, PROBE_IMAGE, ProdStack

# What a probe pod runs: which (host, port) pairs it can open, and whether it can resolve names.
PROBE_SCRIPT = (
    "import json, socket, sys, time\n"
    # The policy enforcer programs a new pod's rules a few seconds
    # after it starts; what is measured is the steady state.
    "time.sleep(10)\n"
    "out = {}\n"
    "try:\n"
    "    socket.getaddrinfo('kubernetes.default.svc.cluster.local', 443)\n"
    "    out['dns'] = True\n"
    "except OSError:\n"
    "    out['dns'] = False\n"
    "for host, port in json.loads(sys.argv[1]):\n"
    "    try:\n"
    "        socket.create_connection((host, port), timeout=3).close()\n"
    "        out[f'{host}:{port}'] = True\n"
    "    except OSError:\n"
    "        out[f'{host}:{port}'] = False\n"
    "print(json.dumps(out))\n"
)


def pod_security(prod: ProdStack) -> None:
    total = 0
    for namespace in (prod.namespace, prod.operator_namespace):
        labels = prod.kube.json("get", "namespace", namespace)["metadata"].get("labels", {})
        check(
            labels.get("pod-security.kubernetes.io/enforce") == "restricted",
            f"namespace {namespace} does not enforce restricted: {labels}",
        )
        total += len(prod.kube.json("get", "pods", "-n", namespace)["items"])
    prod.report.ok(f"both namespaces enforce restricted; {total} pods admitted under it")
    violating = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "psa-violation", "namespace": prod.namespace},
        "spec": {
            "containers": [
                {"name": "c", "image": prod.image(PROBE_IMAGE), "securityContext": {"privileged": True}}
            ]
        },
    }
    reply = prod.kube.run("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(violating), check_rc=False)
    check("violates PodSecurity" in reply, f"a privileged pod was not rejected: {reply[-500:]}")
    prod.report.ok('a privileged pod is rejected: violates PodSecurity "restricted"')


def probe(
    prod: ProdStack, name: str, labels: dict[str, str], targets: list[tuple[str, int]]
) -> dict[str, bool]:
    """Which of ``targets`` a pod with ``labels`` can open a TCP connection to;
    ``dns`` says whether it could resolve names at all."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": prod.namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": prod.image(PROBE_IMAGE),
                    "command": ["python3", "-c", PROBE_SCRIPT, json.dumps(targets)],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"memory": "128Mi"},
                    },
                }
            ],
        },
    }
    prod.kube.run("delete", "pod", name, "-n", prod.namespace, "--ignore-not-found", "--wait=true")
    prod.kube.apply(pod)
    try:
        wait_for(
            f"probe pod {name} to finish",
            lambda: (
                prod.kube.json("get", "pod", name, "-n", prod.namespace)["status"]["phase"]
                in ("Succeeded", "Failed")
            ),
            timeout=120,
        )
        logs = prod.kube.run("logs", name, "-n", prod.namespace)
        return dict(json.loads(logs.strip().splitlines()[-1]))
    finally:
        prod.kube.run("delete", "pod", name, "-n", prod.namespace, "--wait=false", check_rc=False)


def tuple_of(key: str) -> tuple[str, int]:
    host, port = key.rsplit(":", 1)
    return host, int(port)


def network_policies(prod: ProdStack) -> None:
    redis_, minio, inference, gateway = (
        ("redis", 6379),
        ("minio", 9000),
        ("inference", 3000),
        ("gateway", 8080),
    )
    api = ("kubernetes.default.svc.cluster.local", 443)
    # name, labels, expected reachability, expected DNS
    cases: list[tuple[str, dict[str, str], dict[tuple[str, int], bool], bool]] = [
        (
            "np-as-gateway",
            {LABEL: "gateway"},
            {inference: True, redis_: True, minio: False, api: False},
            True,
        ),
        ("np-as-inference", {LABEL: "inference"}, {redis_: True, minio: True, gateway: False}, True),
        (
            "np-as-spark",
            dict(APP_LABEL),
            {minio: True, redis_: True, api: True, gateway: False},
            True,
        ),
        ("np-unlabelled", {}, {redis_: False, minio: False, inference: False}, False),
    ]
    for name, labels, expected, dns in cases:
        seen = probe(prod, name, labels, list(expected))
        wrong = {k: v for k, v in seen.items() if k != "dns" and v != expected[tuple_of(k)]}
        check(not wrong, f"{name} ({labels}): reachability differs from the declared flows: {wrong}")
        check(seen["dns"] == dns, f"{name}: DNS {'blocked' if dns else 'open'}, expected otherwise")
        opened = [k for k, v in seen.items() if v and k != "dns"]
        blocked = [k for k, v in seen.items() if not v and k != "dns"]
        prod.report.ok(
            f"{name}: open {', '.join(opened) or 'nothing'}; blocked {', '.join(blocked) or 'nothing'}; "
            f"DNS {'open' if dns else 'blocked'}"
        )
