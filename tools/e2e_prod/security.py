"""Prod steps 2 and 3: Pod Security "restricted" on both namespaces; NetworkPolicies from probe pods."""

from __future__ import annotations

import json
from typing import Any

from jobs.conventions import APP_LABEL, DRIVER_LABEL
from tools.e2e_common.report import check, wait_for
from tools.e2e_prod.stack import LABEL, PROBE_IMAGE, ProdStack

# What a probe pod runs: for each (host, port), how a TCP connection to it
# ends ("open", "refused", "timeout", or "dns" when the name does not
# resolve), so a negative is told apart from a name that never resolved.
PROBE_SCRIPT = (
    "import json, socket, sys, time\n"
    # The policy enforcer programs a new pod's rules a few seconds
    # after it starts; what is measured is the steady state.
    "time.sleep(10)\n"
    "out = {}\n"
    "try:\n"
    "    socket.getaddrinfo('kubernetes.default.svc.cluster.local', 443)\n"
    "    out['dns'] = 'open'\n"
    "except OSError:\n"
    "    out['dns'] = 'blocked'\n"
    "for host, port in json.loads(sys.argv[1]):\n"
    "    key = f'{host}:{port}'\n"
    "    try:\n"
    "        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]\n"
    "    except OSError:\n"
    "        out[key] = 'dns'\n"
    "        continue\n"
    "    try:\n"
    "        socket.create_connection(address, timeout=3).close()\n"
    "        out[key] = 'open'\n"
    "    except ConnectionRefusedError:\n"
    "        out[key] = 'refused'\n"
    "    except TimeoutError:\n"
    "        out[key] = 'timeout'\n"
    "    except OSError as error:\n"
    "        out[key] = f'error {error.errno}'\n"
    "print(json.dumps(out))\n"
)


def pod_security(prod: ProdStack) -> None:
    total = 0
    for namespace in (prod.namespace, prod.jobs_namespace, prod.operator_namespace):
        labels = prod.kube.json("get", "namespace", namespace)["metadata"].get("labels", {})
        check(
            labels.get("pod-security.kubernetes.io/enforce") == "restricted",
            f"namespace {namespace} does not enforce restricted: {labels}",
        )
        total += len(prod.kube.json("get", "pods", "-n", namespace)["items"])
    prod.report.ok(f"the three namespaces enforce restricted; {total} pods admitted under it")
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


def probe_pod(
    prod: ProdStack,
    name: str,
    labels: dict[str, str],
    command: list[str],
    namespace: str,
    account: str | None = None,
) -> dict[str, Any]:
    """What a pod with ``labels`` running ``command`` in ``namespace`` (as
    ``account``, with its token, when given) printed last, as JSON."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            **({"serviceAccountName": account} if account else {"automountServiceAccountToken": False}),
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": prod.image(PROBE_IMAGE),
                    "command": command,
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    ],
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
    prod.kube.run("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=true")
    prod.kube.apply(pod)
    try:
        wait_for(
            f"probe pod {name} to finish",
            lambda: (
                prod.kube.json("get", "pod", name, "-n", namespace)["status"]["phase"]
                in ("Succeeded", "Failed")
            ),
            timeout=120,
        )
        logs = prod.kube.run("logs", name, "-n", namespace)
        return dict(json.loads(logs.strip().splitlines()[-1]))
    finally:
        prod.kube.run("delete", "pod", name, "-n", namespace, "--wait=false", check_rc=False)


def probe(
    prod: ProdStack,
    name: str,
    labels: dict[str, str],
    targets: list[tuple[str, int]],
    namespace: str | None = None,
) -> dict[str, str]:
    """How a pod with ``labels`` (in ``namespace``, the platform's by
    default) ends a TCP connection to each of ``targets``; ``dns`` says
    whether it could resolve names at all."""
    command = ["python3", "-c", PROBE_SCRIPT, json.dumps(targets)]
    return {k: str(v) for k, v in probe_pod(prod, name, labels, command, namespace or prod.namespace).items()}


def tuple_of(key: str) -> tuple[str, int]:
    host, port = key.rsplit(":", 1)
    return host, int(port)


def cluster_ip(prod: ProdStack, service: str) -> str:
    return str(prod.kube.json("get", "service", service, "-n", prod.namespace)["spec"]["clusterIP"])


def expect(
    prod: ProdStack,
    name: str,
    seen: dict[str, str],
    expected: dict[tuple[str, int], bool],
    dns: bool,
    note: str = "",
) -> None:
    """Each target ``open`` exactly when expected; a target expected closed
    must have resolved and then failed to connect, so the policy under
    test, not a name or a port, is what closed it."""
    check(seen["dns"] == ("open" if dns else "blocked"), f"{name}: DNS {seen['dns']}, expected otherwise")
    wrong = {
        key: outcome
        for key, outcome in seen.items()
        if key != "dns" and (outcome == "open") != expected[tuple_of(key)]
    }
    check(not wrong, f"{name}: reachability differs from the declared flows: {wrong}")
    unresolved = [key for key, outcome in seen.items() if outcome == "dns"]
    check(not unresolved, f"{name}: names that did not resolve prove nothing: {unresolved}")
    opened = [k for k, v in seen.items() if k != "dns" and v == "open"]
    closed = [f"{k} ({v})" for k, v in seen.items() if k != "dns" and v != "open"]
    prod.report.ok(
        f"{name}: open {', '.join(opened) or 'nothing'}; closed {', '.join(closed) or 'nothing'}; "
        f"DNS {seen['dns']}{note}"
    )


def network_policies(prod: ProdStack) -> None:
    # The Services' ports: the gateway's Service listens on 80 (to 8080).
    redis_, minio, console, inference, gateway = (
        ("redis", 6379),
        ("minio", 9000),
        ("minio", 9001),
        ("inference", 3000),
        ("gateway", 80),
    )
    api = ("kubernetes.default.svc.cluster.local", 443)
    # Probes wearing a workload's labels: its egress policy and the
    # targets' ingress policies decide. A target reached by one probe and
    # closed to another is closed by policy, not by a port or a name.
    cases: list[tuple[str, dict[str, str], dict[tuple[str, int], bool]]] = [
        ("np-as-gateway", {LABEL: "gateway"}, {inference: True, redis_: True, minio: False, api: False}),
        # Callers get the ports they use: MinIO's S3 port, not its console.
        (
            "np-as-inference",
            {LABEL: "inference"},
            {redis_: True, minio: True, console: False, gateway: False},
        ),
        # Monitoring reaches every metrics port, the gateway's included, and nothing else.
        (
            "np-as-prometheus",
            {LABEL: "prometheus"},
            {gateway: True, inference: True, minio: True, console: False, redis_: False},
        ),
    ]
    for name, labels, expected in cases:
        expect(prod, name, probe(prod, name, labels, list(expected)), expected, dns=True)
    # Spark pods run in the jobs namespace and reach the services by their
    # qualified names.
    spark = {
        **{
            (f"{host}.{prod.namespace}.svc.cluster.local", port): host in ("minio", "redis") and port != 9001
            for host, port in (minio, redis_, console, gateway, inference)
        },
        api: True,
    }
    seen = probe(prod, "np-as-spark", dict(APP_LABEL), list(spark), namespace=prod.jobs_namespace)
    expect(prod, "np-as-spark", seen, spark, dns=True, note=f" (from {prod.jobs_namespace})")

    # A pod with no labels: the default deny closes its egress, DNS
    # included, so it is given addresses rather than names.
    by_ip = {(cluster_ip(prod, host), port): False for host, port in (redis_, minio, inference)}
    seen = probe(prod, "np-unlabelled", {}, list(by_ip))
    expect(prod, "np-unlabelled", seen, by_ip, dns=False, note=" (its own egress denied)")

    # Only the targets' ingress policies: a pod in a namespace without
    # policies (egress open, names resolve) reaches none of them, the
    # gateway included (it takes traffic from the ingress controller's
    # namespace and monitoring only; the probes above reach it).
    outside = f"{prod.namespace}-np-outside"
    prod.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": outside, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        }
    )
    try:
        fqdn = {
            (f"{host}.{prod.namespace}.svc.cluster.local", port): False
            for host, port in (gateway, redis_, minio, inference)
        }
        seen = probe(prod, "np-outside", {}, list(fqdn), namespace=outside)
        expect(prod, "np-outside", seen, fqdn, dns=True, note=" (another namespace: only ingress policies)")
    finally:
        prod.kube.run("delete", "namespace", outside, "--wait=false", check_rc=False)


# What a pod running as the drivers' account asks of the API server: each
# case is (method, path, body), with @SELF_NAME@ and @SELF_UID@ standing
# for the pod's own name and UID. Prints each case's status and message.
API_SCRIPT = (
    "import json, os, ssl, sys, urllib.error, urllib.request\n"
    "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
    "token = open(sa + '/token').read().strip()\n"
    "context = ssl.create_default_context(cafile=sa + '/ca.crt')\n"
    "text = sys.argv[1].replace('@SELF_NAME@', os.environ['POD_NAME'])\n"
    "cases = json.loads(text.replace('@SELF_UID@', os.environ['POD_UID']))\n"
    "out = {}\n"
    "for name, (method, path, body) in cases.items():\n"
    "    data = json.dumps(body).encode() if body else None\n"
    "    headers = {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'}\n"
    "    url = 'https://kubernetes.default.svc' + path\n"
    "    request = urllib.request.Request(url, data, headers, method=method)\n"
    "    try:\n"
    "        with urllib.request.urlopen(request, context=context, timeout=10) as reply:\n"
    "            out[name] = [reply.status, '']\n"
    "    except urllib.error.HTTPError as error:\n"
    "        out[name] = [error.code, json.loads(error.read() or b'{}').get('message', '')]\n"
    "print(json.dumps(out))\n"
)


def executor_pod(prod: ProdStack, **changes: Any) -> dict[str, Any]:
    """An executor pod as a driver would ask for it (owned by the asking
    pod, the executors' account, the Spark image, the jobs' Secret), with
    ``changes`` to its labels, account, owner, image or volumes."""
    labels = {**APP_LABEL, "spark-role": "executor", **changes.get("labels", {})}
    owner = changes.get("owner", "@SELF_NAME@")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "admission-check-",
            "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": owner, "uid": "@SELF_UID@"}],
        },
        "spec": {
            "serviceAccountName": changes.get("account", "spark-executor"),
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 185,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "executor",
                    "image": changes.get("image", prod.image("spark")),
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            "volumes": [
                {"name": "secrets", "secret": {"secretName": changes.get("secret", "spark-credentials")}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }


def driver_account_limits(prod: ProdStack) -> None:
    """From a pod running as the drivers' account, with its token: reading a
    Secret is forbidden, and of the pods it may create (a server-side dry
    run, so nothing is made) only an executor of its own application is
    admitted."""
    jobs = prod.jobs_namespace
    pods = f"/api/v1/namespaces/{jobs}/pods?dryRun=All"
    cases: dict[str, tuple[str, str, Any]] = {
        "read the jobs' Secret": ("GET", f"/api/v1/namespaces/{jobs}/secrets/spark-credentials", None),
        "list the services' Secrets": ("GET", f"/api/v1/namespaces/{prod.namespace}/secrets", None),
        "an executor of its own": ("POST", pods, executor_pod(prod)),
        "a pod mounting another Secret": ("POST", pods, executor_pod(prod, secret="other-secret")),
        "a pod running as another account": ("POST", pods, executor_pod(prod, account="spark-driver")),
        "a pod wearing a service's label": ("POST", pods, executor_pod(prod, labels={LABEL: "gateway"})),
        # Prometheus scrapes what wears it.
        "a pod wearing the drivers' label": ("POST", pods, executor_pod(prod, labels=dict(DRIVER_LABEL))),
        "an executor of another application": ("POST", pods, executor_pod(prod, owner="another-driver")),
        "a pod of another image": ("POST", pods, executor_pod(prod, image=prod.image("inference"))),
    }
    command = ["python3", "-c", API_SCRIPT, json.dumps(cases)]
    seen = probe_pod(prod, "as-spark-driver", dict(APP_LABEL), command, jobs, account="spark-driver")
    status = {name: int(seen[name][0]) for name in cases}
    check(
        status["an executor of its own"] == 201,
        f"its own executor was not admitted: {seen['an executor of its own']}",
    )
    for name in ("read the jobs' Secret", "list the services' Secrets"):
        check(status[name] == 403, f"{name}: {seen[name]}, expected 403 (forbidden by RBAC)")
    denied = [n for n in cases if n.startswith(("a pod", "an executor of another"))]
    for name in denied:
        message = str(seen[name][1])
        check(
            status[name] == 422
            and "ValidatingAdmissionPolicy" in message
            and "spark-driver may only create" in message,
            f"{name}: {seen[name]}, expected a denial by the jobs' admission policy",
        )
    prod.report.ok(
        "as the drivers' account: Secrets 403; its own executor admitted; denied by the admission policy: "
        + ", ".join(denied)
    )
