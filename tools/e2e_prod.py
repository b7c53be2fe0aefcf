"""The prod stack deployed for real on the local Kubernetes cluster, end to end.

Run with ``make e2e-prod`` after ``make cluster`` (or ``python -m
tools.e2e_prod`` with the toolchain's env.sh sourced). On an ephemeral stack
configured as ``Pulumi.prod.yaml`` plus ``cluster/prod-stack.yaml`` (what
this machine needs) plus the few settings this test adds to see things
happen in seconds (listed in ``TEST_OVERRIDES``), it:

1. builds the images, pushes them to the cluster's registry and runs ``up``
   with the real engine and kubernetes provider (every Deployment, Job and
   the operator's chart awaited); a second ``up`` and a ``preview`` must
   change nothing;
2. checks Pod Security "restricted" on both namespaces: every pod admitted,
   a violating pod rejected;
3. checks the NetworkPolicies from probe pods wearing each workload's
   labels: declared flows open, undeclared flows blocked;
4. runs datagen -> features -> train through the jobs CLI as
   SparkApplications of the real Spark Operator, watches executors scale,
   runs seed 002's job on a CSV, and sees a scheduled application run once;
5. serves predictions through the Ingress (TLS by the cluster's controller)
   and through the gateway Service: 200, 401, 429; /metrics and /readyz
   hidden from the Ingress;
6. checks Prometheus: every target up, every catalogued metric present, and
   a stopped workload's alert firing;
7. deletes an inference pod under load (5xx counted), shows a pod whose
   model cannot load is not Ready while liveness holds, and rotates the
   gateway's API key through config;
8. keeps a Redis key and a MinIO object across pod deletion and across
   ``destroy`` + ``up``, and lists what ``destroy`` leaves;
9. with ``--peer``, times ``kubectl apply --server-side`` + ``kubectl wait``
   of the same rendered manifests as the peer of the first ``up``.

A summary table ends the run; the exit status is non-zero on any failure.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any

import boto3
import redis
import yaml
from botocore.config import Config as BotoConfig
from pulumi import automation as auto

from infra.project import PROJECT, ROOT
from jobs.launch import APP_LABEL
from monitoring import metrics
from tools.e2e import (
    MODEL,
    Failure,
    Report,
    check,
    http,
    jobs_submit_command,
    percentile,
    printed_counts,
    timed,
    wait_for,
    write_seed_csv,
)
from tools.harness import merge_config, stack_config

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
CLUSTER_SCOPED_KINDS = (
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)


def log(message: str) -> None:
    print(f"[e2e-prod {time.strftime('%H:%M:%S')}] {message}", flush=True)


def cluster_settings() -> dict[str, str]:
    """The paths and ports cluster/lib.sh computes."""
    names = ["ADMIN_KUBECONFIG", "CLUSTER_BIN", "CLUSTER_REGISTRY", "CLUSTER_INGRESS_HTTPS_PORT"]
    script = f"source {ROOT / 'cluster' / 'lib.sh'}; " + "; ".join(f'printf "%s\\n" "${n}"' for n in names)
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    return dict(zip(names, out.splitlines(), strict=True))


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


# -- kubectl ------------------------------------------------------------------


class Kube:
    def __init__(self, kubeconfig: str, out: Callable[[str], None]) -> None:
        self.env = {**os.environ, "KUBECONFIG": kubeconfig}
        self.out = out

    def run(self, *args: str, stdin: str | None = None, check_rc: bool = True, timeout: float = 300) -> str:
        done = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=timeout
        )
        self.out(f"$ kubectl {' '.join(args)}\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        if check_rc and done.returncode != 0:
            raise Failure(f"kubectl {' '.join(args)}: {done.stderr.strip()[-1500:]}")
        return done.stdout if done.returncode == 0 else done.stderr

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))

    def apply(self, manifest: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", stdin=json.dumps(manifest))

    @contextlib.contextmanager
    def forward(self, namespace: str, target: str, port: int) -> Iterator[int]:
        """``kubectl port-forward`` to a free local port, for the block's duration."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
        process = subprocess.Popen(
            ["kubectl", "port-forward", "-n", namespace, target, f"{local}:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise Failure(f"port-forward {target}: {process.stdout.read() if process.stdout else ''}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), 1):
                    break
                time.sleep(0.2)
            else:
                raise Failure(f"port-forward {target} did not open in 30 s")
            yield local
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


class SNIConnection(HTTPSConnection):
    """HTTPS to an address, with the TLS server name (and Host) of a name."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext) -> None:
        super().__init__(address, port, context=context, timeout=10)
        self.server_name = server_name
        self.tls_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.server_name)


# -- the run ------------------------------------------------------------------


class ProdEndToEnd:
    def __init__(self, name: str, rows: int, build: bool, with_peer: bool = False) -> None:
        self.name = name
        self.with_peer = with_peer
        self.rows = rows
        self.build = build
        self.report = Report()
        self.log_file = open(ROOT / f".e2e-{name}.log", "w")  # noqa: SIM115 - closed in run()
        self.cluster = cluster_settings()
        os.environ["PATH"] = f"{self.cluster['CLUSTER_BIN']}{os.pathsep}{os.environ['PATH']}"
        os.environ["KUBECONFIG"] = self.cluster["ADMIN_KUBECONFIG"]
        self.kube = Kube(self.cluster["ADMIN_KUBECONFIG"], self._out)
        self.overrides = merge_config(load_overrides(), TEST_OVERRIDES)
        self.config = merge_config(stack_config("prod"), self.overrides)
        self.namespace = get_in(self.config, ("kubernetes", "namespace"))
        self.operator_namespace = self.config.get("sparkOperator", {}).get("namespace", "spark-operator")
        self.host = get_in(self.config, INGRESS_HOST_KEY)
        self.tls_secret = get_in(self.config, ("gateway", "ingress", "tlsSecretName"))
        self.stack: auto.Stack | None = None
        self.outputs: dict[str, Any] = {}
        self.last_output = ""
        self.timings: list[tuple[str, float]] = []
        self.tls_dir = Path(tempfile.mkdtemp(prefix="e2e-prod-tls-"))

    def _out(self, line: str) -> None:
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def time(self, what: str, seconds: float) -> None:
        self.timings.append((what, seconds))
        self.report.add(what, f"{seconds:.1f} s")

    # -- pulumi ---------------------------------------------------------

    def engine_config(self) -> dict[str, auto.ConfigValue]:
        return {
            f"{PROJECT}:{k}": auto.ConfigValue(v if isinstance(v, str) else json.dumps(v))
            for k, v in self.config.items()
        }

    def up(self, what: str) -> tuple[auto.UpResult, float]:
        assert self.stack is not None
        log(f"pulumi up ({what}); engine output in {self.log_file.name}")
        try:
            return timed(lambda: self.stack.up(on_output=self._out, color="never"))  # type: ignore[union-attr]
        except auto.CommandError as exc:
            raise Failure(f"pulumi up ({what}) failed:\n{str(exc)[-3000:]}") from None

    @staticmethod
    def changes(summary: dict[str, int] | None) -> dict[str, int]:
        return {k: v for k, v in (summary or {}).items() if k != "same" and v}

    def refresh_outputs(self) -> None:
        assert self.stack is not None
        self.outputs = {k: v.value for k, v in self.stack.outputs().items()}

    def credentials(self) -> dict[str, str]:
        return dict(self.outputs["platform_credentials"])

    # -- 1. deploy ------------------------------------------------------

    def images(self) -> None:
        version = self.config.get("version") or "0.1.0"
        start = time.monotonic()
        if self.build:
            subprocess.run(
                [
                    "bash",
                    str(ROOT / "scripts" / "build-images.sh"),
                    "spark",
                    "minio",
                    "gateway",
                    "inference",
                    "redis-standin",
                    "prometheus-standin",
                    "alertmanager-standin",
                    "spark-operator",
                ],
                check=True,
            )
        registry = str(self.config["imageRegistry"]).rstrip("/")
        configured = {name: str(ref) for name, ref in self.config.get("images", {}).items()}
        configured["spark-operator"] = str(self.config["sparkOperator"]["image"])
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
        # Tags move as code changes; the cluster would keep running what it
        # pulled first under a tag. Each image is pinned to what was pushed.
        pinned = {name: f"{ref}@{digests[ref]}" for name, ref in configured.items()}
        self.config["sparkOperator"] = {**self.config["sparkOperator"], "image": pinned.pop("spark-operator")}
        self.config["images"] = {**self.config.get("images", {}), **pinned}
        self.report.add("images pinned by digest", ", ".join(sorted(pinned)) + ", spark-operator")
        self.time("images built and pushed to the cluster's registry", time.monotonic() - start)

    def deploy(self) -> None:
        self.stack = auto.create_or_select_stack(stack_name=self.name, work_dir=str(ROOT))
        self.stack.set_all_config(self.engine_config())
        result, seconds = self.up("first")
        created = (result.summary.resource_changes or {}).get("create", 0)
        self.report.add("resources created", str(created))
        self.time("first up, every object awaited ready", seconds)
        self.refresh_outputs()
        for namespace in (self.namespace, self.operator_namespace):
            deployments = self.kube.json("get", "deployments", "-n", namespace)["items"]
            unready = [
                d["metadata"]["name"]
                for d in deployments
                if (d["status"].get("readyReplicas") or 0) < d["spec"]["replicas"]
            ]
            check(bool(deployments) and not unready, f"{namespace}: deployments not ready: {unready}")
            self.report.ok(f"{namespace}: {len(deployments)} Deployments ready after up")
        jobs = self.kube.json("get", "jobs", "-n", self.namespace)["items"]
        incomplete = [j["metadata"]["name"] for j in jobs if not j["status"].get("succeeded")]
        check(not incomplete, f"jobs not complete after up: {incomplete}")
        self.report.ok(f"{len(jobs)} Job(s) complete after up")
        self.tls_secret_for_ingress()

    def tls_secret_for_ingress(self) -> None:
        """The TLS Secret the Ingress names: a certificate for its host."""
        cert, key = self.tls_dir / "tls.crt", self.tls_dir / "tls.key"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN={self.host}",
                "-addext",
                f"subjectAltName=DNS:{self.host}",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        secret = self.kube.run(
            "create",
            "secret",
            "tls",
            self.tls_secret,
            "-n",
            self.namespace,
            f"--cert={cert}",
            f"--key={key}",
            "--dry-run=client",
            "-o",
            "yaml",
        )
        self.kube.run("apply", "-f", "-", stdin=secret)

    def no_op(self) -> None:
        result, seconds = self.up("no-op")
        changes = self.changes(result.summary.resource_changes)
        check(not changes, f"second up changed resources: {changes}")
        self.time("no-op up (0 changes)", seconds)
        assert self.stack is not None
        preview, seconds = timed(lambda: self.stack.preview(on_output=self._out, color="never"))  # type: ignore[union-attr]
        changes = self.changes(preview.change_summary)
        check(not changes, f"preview against the live cluster shows changes: {changes}")
        self.time("preview against the live cluster (0 changes)", seconds)

    # -- 2. Pod Security --------------------------------------------------

    def pod_security(self) -> None:
        total = 0
        for namespace in (self.namespace, self.operator_namespace):
            labels = self.kube.json("get", "namespace", namespace)["metadata"].get("labels", {})
            check(
                labels.get("pod-security.kubernetes.io/enforce") == "restricted",
                f"namespace {namespace} does not enforce restricted: {labels}",
            )
            total += len(self.kube.json("get", "pods", "-n", namespace)["items"])
        self.report.ok(f"both namespaces enforce restricted; {total} pods admitted under it")
        violating = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "psa-violation", "namespace": self.namespace},
            "spec": {
                "containers": [
                    {"name": "c", "image": self.image(PROBE_IMAGE), "securityContext": {"privileged": True}}
                ]
            },
        }
        reply = self.kube.run(
            "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(violating), check_rc=False
        )
        check("violates PodSecurity" in reply, f"a privileged pod was not rejected: {reply[-500:]}")
        self.report.ok('a privileged pod is rejected: violates PodSecurity "restricted"')

    def image(self, name: str) -> str:
        return str(self.config["images"][name])

    # -- 3. network policies ----------------------------------------------

    def probe(self, name: str, labels: dict[str, str], targets: list[tuple[str, int]]) -> dict[str, bool]:
        """Which of ``targets`` a pod with ``labels`` can open a TCP connection to;
        ``dns`` says whether it could resolve names at all."""
        script = (
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
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
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
                        "image": self.image(PROBE_IMAGE),
                        "command": ["python3", "-c", script, json.dumps(targets)],
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
        self.kube.run("delete", "pod", name, "-n", self.namespace, "--ignore-not-found", "--wait=true")
        self.kube.apply(pod)
        try:
            wait_for(
                f"probe pod {name} to finish",
                lambda: (
                    self.kube.json("get", "pod", name, "-n", self.namespace)["status"]["phase"]
                    in ("Succeeded", "Failed")
                ),
                timeout=120,
            )
            logs = self.kube.run("logs", name, "-n", self.namespace)
            return dict(json.loads(logs.strip().splitlines()[-1]))
        finally:
            self.kube.run("delete", "pod", name, "-n", self.namespace, "--wait=false", check_rc=False)

    def network_policies(self) -> None:
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
            seen = self.probe(name, labels, list(expected))
            wrong = {k: v for k, v in seen.items() if k != "dns" and v != expected[tuple_of(k)]}
            check(not wrong, f"{name} ({labels}): reachability differs from the declared flows: {wrong}")
            check(seen["dns"] == dns, f"{name}: DNS {'blocked' if dns else 'open'}, expected otherwise")
            opened = [k for k, v in seen.items() if v and k != "dns"]
            blocked = [k for k, v in seen.items() if not v and k != "dns"]
            self.report.ok(
                f"{name}: open {', '.join(opened) or 'nothing'}; blocked {', '.join(blocked) or 'nothing'}; "
                f"DNS {'open' if dns else 'blocked'}"
            )

    # -- 4. jobs ----------------------------------------------------------

    def submit(self, job: str, *args: str) -> float:
        command = jobs_submit_command(self.name, job, *args)
        log(f"submitting {job}")
        watcher = ExecutorWatch(self.kube, self.namespace)
        watcher.start()
        start = time.monotonic()
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
        watcher.stop()
        self.last_output = completed.stdout + completed.stderr
        self._out(self.last_output)
        check(
            completed.returncode == 0,
            f"job {job} failed ({completed.returncode}):\n{self.last_output[-3000:]}",
        )
        self.time(f"job {job}", seconds)
        self.report.add(
            f"job {job}: executors seen",
            f"{' -> '.join(map(str, watcher.counts)) or 'none'} (max {watcher.peak})",
        )
        self.executor_peaks[job] = watcher.peak
        return seconds

    executor_peaks: dict[str, int] = {}

    @contextlib.contextmanager
    def redis_client(self) -> Iterator[redis.Redis]:
        with self.kube.forward(self.namespace, "svc/redis", 6379) as port:
            yield redis.Redis(
                host="127.0.0.1",
                port=port,
                username="admin",
                password=self.outputs["redis_admin_password"],
                socket_timeout=5,
            )

    @contextlib.contextmanager
    def s3(self) -> Iterator[Any]:
        creds = self.credentials()
        with self.kube.forward(self.namespace, "svc/minio", 9000) as port:
            yield boto3.client(
                "s3",
                endpoint_url=f"http://127.0.0.1:{port}",
                aws_access_key_id=creds["s3_access_key"],
                aws_secret_access_key=creds["s3_secret_key"],
                region_name="us-east-1",
                config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            )

    def pipeline(self) -> str:
        version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.submit("datagen", "--rows", str(self.rows), "--entities", "2000", "--overwrite")
        self.submit("features")
        self.submit("train", "--version", version)
        spark = self.config["spark"]
        low, high = int(spark.get("minExecutors", 1)), int(spark["maxExecutors"])
        peaks = list(self.executor_peaks.values())
        check(
            all(p <= high for p in peaks), f"more executors than maxExecutors {high}: {self.executor_peaks}"
        )
        check(any(p >= max(low, 1) for p in peaks), f"no executor pod seen: {self.executor_peaks}")
        self.report.ok(f"executors stayed within {low}..{high}; peaks {self.executor_peaks}")
        with self.redis_client() as client:
            live = client.get("features:current")
            check(live is not None, "no live online features version in Redis")
            prefix = f"features:v:{live.decode()}:"
            check(bool(client.hgetall(prefix + "u00000001")), "no online features for u00000001")
            keys = sum(1 for _ in client.scan_iter(match=prefix + "*", count=1000))
            self.report.add("entities in Redis", str(keys))
        buckets = self.outputs["buckets"]
        with self.s3() as s3:
            latest = (
                s3.get_object(Bucket=buckets["models"], Key=f"{MODEL}/LATEST")["Body"].read().decode().strip()
            )
            check(latest == version, f"LATEST names {latest!r}, expected {version!r}")
            s3.head_object(Bucket=buckets["models"], Key=f"{MODEL}/{version}/model.onnx")
        self.report.ok("features in Redis, model and LATEST in MinIO")
        return version

    def seed_job(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "data.csv"
            expected = write_seed_csv(path)
            self.submit("event_counts", str(path), "--column", "column1")
        printed = printed_counts(self.last_output)
        check(printed == expected, f"event_counts printed {printed}, expected {expected}")
        uploaded = [line for line in self.last_output.splitlines() if "s3a://" in line and "uploads/" in line]
        check(bool(uploaded), "the CSV was not put into MinIO")
        self.csv_uri = uploaded[0][uploaded[0].index("s3a://") :].split()[0].rstrip(".,")
        self.report.ok(f"seed 002's job on a CSV in MinIO ({self.csv_uri}): 7 groups counted exactly")

    csv_uri = ""

    def scheduled(self) -> None:
        apps = self.kube.json("get", "scheduledsparkapplications", "-n", self.namespace)["items"]
        names = {a["metadata"]["name"] for a in apps}
        declared = {j["name"] for j in self.config.get("sparkJobs", []) if j.get("schedule")}
        check(declared <= names, f"scheduled applications missing: {declared - names}")
        wait_for(
            "the operator to schedule the stack's ScheduledSparkApplications",
            lambda: all(
                (a.get("status") or {}).get("scheduleState") == "Scheduled"
                for a in self.kube.json("get", "scheduledsparkapplications", "-n", self.namespace)["items"]
            ),
            timeout=60,
        )
        self.report.ok(f"the operator accepted {len(names)} ScheduledSparkApplications: {sorted(names)}")
        # One more, due within a minute, on the CSV just counted.
        soon = {
            "name": "counts-soon",
            "job": "event_counts",
            "schedule": "@every 1m",
            "args": [self.csv_uri, "--column", "column1"],
        }
        self.config["sparkJobs"] = [*self.config.get("sparkJobs", []), soon]
        assert self.stack is not None
        self.stack.set_all_config(self.engine_config())
        self.up("a job scheduled every minute")
        start = time.monotonic()

        def ran() -> str | None:
            status = (
                self.kube.json("get", "scheduledsparkapplication", "counts-soon", "-n", self.namespace).get(
                    "status"
                )
                or {}
            )
            last = status.get("lastRunName")
            if not last:
                return None
            app = self.kube.json("get", "sparkapplication", last, "-n", self.namespace)
            state = ((app.get("status") or {}).get("applicationState") or {}).get("state")
            check(state != "FAILED", f"the scheduled run {last} failed: {app.get('status')}")
            return last if state == "COMPLETED" else None

        run = wait_for("the scheduled application's first run to complete", ran, timeout=420, interval=5)
        self.time(f"scheduled application: created to its run {run} COMPLETED", time.monotonic() - start)
        self.config["sparkJobs"] = [j for j in self.config["sparkJobs"] if j["name"] != "counts-soon"]
        self.stack.set_all_config(self.engine_config())
        self.up("the every-minute job removed")

    # -- 5. serving -------------------------------------------------------

    def ingress(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        context = ssl.create_default_context(cafile=str(self.tls_dir / "tls.crt"))
        connection = SNIConnection(
            "127.0.0.1", int(self.cluster["CLUSTER_INGRESS_HTTPS_PORT"]), self.host, context
        )
        try:
            connection.request(method, path, body=body, headers={"Host": self.host, **headers})
            reply = connection.getresponse()
            return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
        finally:
            connection.close()

    def serving(self, version: str) -> None:
        key = self.credentials()["gateway_api_key"]
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = json.dumps({"entity_id": "u00000001"}).encode()

        def served() -> bool:
            status, _, raw = self.ingress("POST", "/v1/predict", body, auth)
            return status == 200 and json.loads(raw)["model"]["version"] == version

        wait_for("the Ingress serving the new model over TLS", served, timeout=180, interval=2)
        self.report.ok(
            f"Ingress (TLS, certificate for {self.host} verified): prediction with model {version}"
        )
        status, _, _ = self.ingress("POST", "/v1/predict", body, {"Content-Type": "application/json"})
        check(status == 401, f"Ingress without a key: {status}")
        for path in ("/metrics", "/readyz"):
            status, _, _ = self.ingress("GET", path, None, {})
            check(status == 404, f"{path} through the Ingress: {status}, expected 404")
        self.report.ok("Ingress: no key 401; /metrics and /readyz 404")
        with self.kube.forward(self.namespace, "svc/gateway", 80) as port:
            url = f"http://127.0.0.1:{port}"
            reply = http("POST", f"{url}/v1/predict", body, auth)
            check(reply.status == 200, f"gateway Service: {reply.status} {reply.body[:200]!r}")
            check(
                http("POST", f"{url}/v1/predict", body, {"Content-Type": "application/json"}).status == 401,
                "no key",
            )
            latencies = []
            for i in range(300):
                entity = json.dumps({"entity_id": f"u{(i % 2000):08d}"}).encode()
                start = time.perf_counter()
                reply = http("POST", f"{url}/v1/predict", entity, auth)
                latencies.append((time.perf_counter() - start) * 1000)
                check(reply.status == 200, f"prediction {i}: {reply.status}")
            self.report.add(
                "gateway Service port 80, 300 sequential predictions",
                f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms",
            )

        # The burst goes through the Ingress, the path users take: `kubectl
        # port-forward` multiplexes every connection over one stream to the
        # API server and stalls under many at once.
        def one(_: int) -> int:
            try:
                return self.ingress("POST", "/v1/predict", body, auth)[0]
            except OSError:
                return -1

        _, headers, _ = self.ingress("POST", "/v1/predict", body, auth)
        remaining = int(headers.get("x-ratelimit-remaining", "0"))
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(remaining + 300)))
            # The window refills during the burst; go on until it answers.
            for _ in range(20):
                if 429 in statuses:
                    break
                statuses.extend(pool.map(one, range(300)))
        counts = collections.Counter(statuses)
        check(counts[429] > 0, f"no 429 in a burst over the limit: {counts}")
        check(set(counts) <= {200, 429}, f"a burst over the limit answered other than 200/429: {counts}")
        self.report.ok(
            f"gateway Service: 200, no key 401; Ingress burst: {counts[429]} of {len(statuses)} answered 429"
        )

    # -- 6. monitoring ----------------------------------------------------

    def monitoring(self) -> None:
        with self.kube.forward(self.namespace, "svc/prometheus", 9090) as port:
            url = f"http://127.0.0.1:{port}"

            def all_up() -> list[dict[str, Any]] | None:
                targets = http("GET", f"{url}/api/v1/targets").json()["data"]["activeTargets"]
                return targets if targets and all(t["health"] == "up" for t in targets) else None

            targets = wait_for("every Prometheus target up", all_up, timeout=120, interval=3)
            jobs = {t["labels"]["job"] for t in targets}
            self.report.ok(f"Prometheus: {len(targets)} targets up ({', '.join(sorted(jobs))})")
            samples = {
                sample: service.job
                for service in metrics.SERVICES
                if service.job in jobs
                for metric in service.metrics
                for sample in metric.samples
            }

            def series(name: str) -> int:
                query = urllib.parse.urlencode({"query": f'count({{__name__="{name}"}})'})
                result = http("GET", f"{url}/api/v1/query?{query}").json()["data"]["result"]
                return int(float(result[0]["value"][1])) if result else 0

            with contextlib.suppress(Failure):
                wait_for(
                    "every catalogued metric", lambda: all(series(n) for n in samples), timeout=60, interval=5
                )
            missing = sorted(f"{samples[n]}: {n}" for n in samples if not series(n))
            check(not missing, f"catalogued metrics with no series in Prometheus: {missing}")
            not_here = sorted({s.job for s in metrics.SERVICES} - jobs)
            self.report.ok(
                f"Prometheus has series of all {len(samples)} catalogued metrics of its jobs"
                + (f" (not in this tier: {', '.join(not_here)})" if not_here else "")
            )
            self.kube.run("scale", "deployment/gateway", "-n", self.namespace, "--replicas=0")
            start = time.monotonic()

            def firing() -> bool:
                alerts = http("GET", f"{url}/api/v1/alerts").json()["data"]["alerts"]
                return any(
                    a["labels"].get("alertname") == "ServiceDown"
                    and a["labels"].get("job") == "gateway"
                    and a["state"] == "firing"
                    for a in alerts
                )

            wait_for("ServiceDown{job=gateway} firing", firing, timeout=180, interval=2)
            self.time("gateway scaled to 0 to ServiceDown firing", time.monotonic() - start)
        replicas = int(self.config["gateway"].get("replicas", 2))
        self.kube.run("scale", "deployment/gateway", "-n", self.namespace, f"--replicas={replicas}")
        self.kube.run("rollout", "status", "deployment/gateway", "-n", self.namespace, "--timeout=180s")

    # -- 7. resilience ----------------------------------------------------

    def inference_pods(self) -> list[dict[str, Any]]:
        return self.kube.json("get", "pods", "-n", self.namespace, "-l", f"{LABEL}=inference")["items"]

    def resilience(self, version: str) -> None:
        key = self.credentials()["gateway_api_key"]
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = json.dumps({"entity_id": "u00000002"}).encode()
        with self.kube.forward(self.namespace, "svc/gateway", 80) as port:
            url = f"http://127.0.0.1:{port}"
            statuses: collections.Counter[int] = collections.Counter()
            stop = threading.Event()

            def load() -> None:
                while not stop.is_set():
                    try:
                        statuses[http("POST", f"{url}/v1/predict", body, auth, timeout=10).status] += 1
                    except OSError:
                        statuses[-1] += 1  # no answer at all: reported beside the 5xx
                    time.sleep(0.02)

            worker = threading.Thread(target=load)
            worker.start()
            try:
                time.sleep(2)
                victim = self.inference_pods()[0]["metadata"]["name"]
                self.kube.run("delete", "pod", victim, "-n", self.namespace, "--wait=true")
                self.kube.run(
                    "rollout", "status", "deployment/inference", "-n", self.namespace, "--timeout=180s"
                )
                time.sleep(3)
            finally:
                stop.set()
                worker.join()
            errors = sum(n for s, n in statuses.items() if s >= 500 or s < 0)
            self.report.add(
                "predictions while an inference pod was deleted",
                f"{sum(statuses.values())} requests, {errors} 5xx ({dict(statuses)})",
            )
            check(statuses[200] > 0, f"no prediction answered while a pod was deleted: {dict(statuses)}")
            self.report.ok(f"an inference pod deleted: predictions kept answering, {errors} 5xx")
        self.unloadable_model(version)
        self.rotate_api_key()

    def unloadable_model(self, version: str) -> None:
        """LATEST names a version that cannot load: pods already serving keep
        their model and stay Ready; a new pod cannot load it and is not Ready,
        and liveness (/healthz) does not restart it."""
        buckets = self.outputs["buckets"]
        with self.s3() as s3:
            s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/broken/model.onnx", Body=b"not a model")
            s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/broken/metadata.json", Body=b"{}")
            s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/LATEST", Body=b"broken\n")
        try:
            before = {p["metadata"]["name"] for p in self.inference_pods()}
            victim = sorted(before)[0]
            self.kube.run("delete", "pod", victim, "-n", self.namespace, "--wait=true")
            new = wait_for(
                "a replacement inference pod",
                lambda: [p for p in self.inference_pods() if p["metadata"]["name"] not in before],
                timeout=60,
            )[0]["metadata"]["name"]
            time.sleep(45)
            pod = self.kube.json("get", "pod", new, "-n", self.namespace)
            ready = next(c for c in pod["status"].get("conditions", []) if c["type"] == "Ready")["status"]
            restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            check(ready == "False", f"{new} is Ready with an unloadable model")
            check(restarts == 0, f"{new} was restarted {restarts} times: liveness follows readiness")
            with self.kube.forward(self.namespace, f"pod/{new}", 3000) as port:
                reason = http("GET", f"http://127.0.0.1:{port}/readyz").body.decode()[:300]
                live = http("GET", f"http://127.0.0.1:{port}/healthz").status
            check(live == 200, f"{new} /healthz answered {live}")
            self.report.ok(
                f"unloadable model: new pod not Ready for 45 s, 0 restarts, /healthz 200, /readyz: {reason}"
            )
        finally:
            with self.s3() as s3:
                s3.put_object(Bucket=buckets["models"], Key=f"{MODEL}/LATEST", Body=f"{version}\n".encode())
        self.kube.run("rollout", "status", "deployment/inference", "-n", self.namespace, "--timeout=240s")
        self.report.ok("LATEST restored: every inference pod Ready again")

    def rotate_api_key(self) -> None:
        old = self.credentials()["gateway_api_key"]
        gateway = dict(self.config["gateway"])
        gateway["apiKeyRotation"] = int(gateway.get("apiKeyRotation", 0)) + 1
        self.config["gateway"] = gateway
        assert self.stack is not None
        self.stack.set_all_config(self.engine_config())
        _, seconds = self.up("gateway API key rotated")
        self.refresh_outputs()
        new = self.credentials()["gateway_api_key"]
        check(new != old, "the API key did not change")
        body = json.dumps({"entity_id": "u00000001"}).encode()
        with self.kube.forward(self.namespace, "svc/gateway", 80) as port:
            url = f"http://127.0.0.1:{port}/v1/predict"
            old_status = http(
                "POST", url, body, {"Authorization": f"Bearer {old}", "Content-Type": "application/json"}
            ).status
            new_status = http(
                "POST", url, body, {"Authorization": f"Bearer {new}", "Content-Type": "application/json"}
            ).status
        check(
            old_status == 401 and new_status == 200,
            f"after rotation: old key {old_status}, new key {new_status}",
        )
        self.time("API key rotated through config: up, pods rolled", seconds)
        self.report.ok("rotated API key: old key 401, new key 200, no manual step")

    # -- 8. data ----------------------------------------------------------

    def write_markers(self) -> str:
        marker = f"marker-{self.name}-{time.time_ns()}"
        with self.redis_client() as client:
            client.set("e2e:marker", marker)
        with self.s3() as s3:
            s3.put_object(Bucket=self.outputs["buckets"]["raw"], Key="e2e/marker", Body=marker.encode())
        return marker

    def markers_kept(self, marker: str, after: str) -> None:
        def read() -> bool:
            with self.redis_client() as client:
                kept_redis = (client.get("e2e:marker") or b"").decode()
            with self.s3() as s3:
                kept_s3 = (
                    s3.get_object(Bucket=self.outputs["buckets"]["raw"], Key="e2e/marker")["Body"]
                    .read()
                    .decode()
                )
            check(kept_redis == marker, f"Redis marker lost after {after}: {kept_redis!r}")
            check(kept_s3 == marker, f"MinIO marker lost after {after}: {kept_s3!r}")
            return True

        wait_for(f"markers readable after {after}", read, timeout=120, interval=3)
        self.report.ok(f"Redis key and MinIO object kept after {after}")

    def data(self) -> None:
        marker = self.write_markers()
        for workload in ("redis", "minio"):
            self.kube.run("delete", "pod", "-n", self.namespace, "-l", f"{LABEL}={workload}", "--wait=true")
            self.kube.run(
                "rollout", "status", f"deployment/{workload}", "-n", self.namespace, "--timeout=180s"
            )
        self.markers_kept(marker, "deleting the Redis and MinIO pods")
        self.marker = marker

    marker = ""

    def destroy_and_up(self) -> None:
        assert self.stack is not None
        claims = {c["metadata"]["name"] for c in self.kube.json("get", "pvc", "-n", self.namespace)["items"]}
        _, seconds = timed(lambda: self.stack.destroy(on_output=self._out, color="never"))  # type: ignore[union-attr]
        self.time("destroy", seconds)
        left = self.leftovers()
        self.report.add("left after destroy", "; ".join(left) or "nothing")
        kept = {c["metadata"]["name"] for c in self.kube.json("get", "pvc", "-n", self.namespace)["items"]}
        check(claims <= kept, f"PVCs lost with destroy: {sorted(claims - kept)}")
        self.report.ok(f"destroy kept the namespace and its {len(kept)} PVCs: {sorted(kept)}")
        if self.with_peer:
            self.peer()
        _, seconds = self.up("after destroy")
        self.time("up after destroy (PVCs reattached)", seconds)
        self.refresh_outputs()
        if self.marker:  # a run resumed at this step wrote none
            self.markers_kept(self.marker, "pulumi destroy + up")

    def leftovers(self) -> list[str]:
        found = []
        for namespace in (self.namespace, self.operator_namespace):
            listed = self.kube.run(
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
            exists = self.kube.run("get", "namespace", namespace, "-o", "name", check_rc=False).startswith(
                "namespace/"
            )
            if exists:
                found.append(
                    f"namespace {namespace}" + (f" with {', '.join(names)}" if names else " (empty)")
                )
        crds = self.kube.run("get", "crd", "-o", "name").split()
        spark = [c for c in crds if "sparkoperator" in c]
        if spark:
            found.append(f"{len(spark)} Spark Operator CRDs (Helm keeps CRDs)")
        return found

    # -- 9. the peer: kubectl apply --server-side of the same manifests -----

    def peer(self) -> None:
        """The same objects, rendered by the engine (the operator's chart
        included), applied with ``kubectl apply --server-side`` and awaited
        with ``kubectl wait``, in namespaces of their own; then deleted."""
        from tools import render

        namespace, operator_namespace = f"{self.namespace}-peer", f"{self.operator_namespace}-peer"
        # This run's configuration, pinned images included, in other namespaces.
        extra = merge_config(
            self.config,
            {"kubernetes": {"namespace": namespace}, "sparkOperator": {"namespace": operator_namespace}},
        )
        with tempfile.TemporaryDirectory() as directory:
            rendered = render.render(
                Path(directory) / "out", install_operator=True, overrides=extra, on_output=self._out
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
                    self.kube.run(
                        "apply",
                        "--server-side",
                        "--force-conflicts",
                        "-f",
                        "-",
                        stdin="\n---\n".join(yaml.safe_dump(d) for d in group),
                    )

            apply(first)
            apply(rest)
            self.kube.run(
                "wait",
                "--for=condition=Available",
                "deployment",
                "--all",
                "-n",
                operator_namespace,
                "--timeout=600s",
            )
            apply(spark)
            self.kube.run(
                "wait", "--for=condition=Available", "deployment", "--all", "-n", namespace, "--timeout=600s"
            )
            self.kube.run(
                "wait", "--for=condition=Complete", "job", "--all", "-n", namespace, "--timeout=600s"
            )
            seconds = time.monotonic() - start
            self.time("peer: kubectl apply --server-side + kubectl wait, same manifests", seconds)
            # The operator's own objects go while it still runs to clear
            # their finalizers; then what no namespace holds; then the rest.
            if spark:
                self.kube.run(
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
                    self.kube.run("delete", d["kind"].lower(), d["metadata"]["name"], "--ignore-not-found")
            self.kube.run(
                "delete", "namespace", namespace, operator_namespace, "--wait=true", "--timeout=300s"
            )

    # -- the run ------------------------------------------------------------

    def timing_table(self) -> None:
        print("\n| step | seconds |\n|---|---|")
        for what, seconds in self.timings:
            print(f"| {what} | {seconds:.1f} |")
        first = dict(self.timings).get("first up, every object awaited ready")
        peer = next((s for w, s in self.timings if w.startswith("peer:")), None)
        if first and peer:
            print(f"\nfirst up / peer: {first / peer:.2f}x (goal <= 1.3x)")

    def cleanup(self) -> None:
        if self.stack is not None:
            with contextlib.suppress(auto.CommandError):
                self.stack.destroy(on_output=self._out, color="never")
        self.kube.run(
            "delete",
            "namespace",
            self.namespace,
            f"{self.namespace}-peer",
            f"{self.operator_namespace}-peer",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=300s",
            check_rc=False,
        )

    STEPS = ("network", "jobs", "seed", "scheduled", "serving", "monitoring", "resilience", "data", "destroy")

    def resume(self) -> None:
        """Take up a stack kept by an earlier run (``--keep``) as it is."""
        self.stack = auto.select_stack(stack_name=self.name, work_dir=str(ROOT))
        self.config = {
            key.split(":", 1)[1]: (json.loads(v.value) if v.value.startswith(("[", "{")) else v.value)
            for key, v in self.stack.get_all_config().items()
            if key.startswith(f"{PROJECT}:")
        }
        self.refresh_outputs()
        # This run's certificate: the test trusts only the one it made.
        self.tls_secret_for_ingress()

    def live_model(self) -> str:
        with self.s3() as s3:
            latest = s3.get_object(Bucket=self.outputs["buckets"]["models"], Key=f"{MODEL}/LATEST")
            return str(latest["Body"].read().decode().strip())

    def run(self, keep: bool, start_at: str | None = None) -> int:
        try:
            steps = self.STEPS[self.STEPS.index(start_at) :] if start_at else self.STEPS
            version = ""
            if start_at is None:
                self.images()
                self.deploy()
                self.no_op()
                self.pod_security()
            else:
                self.resume()
                if start_at in ("seed", "scheduled", "serving", "monitoring", "resilience"):
                    version = self.live_model()
            if "network" in steps:
                self.network_policies()
            if "jobs" in steps:
                version = self.pipeline()
            if "seed" in steps:
                self.seed_job()
            if "scheduled" in steps:
                self.scheduled()
            if "serving" in steps:
                self.serving(version)
            if "monitoring" in steps:
                self.monitoring()
            if "resilience" in steps:
                self.resilience(version)
            if "data" in steps:
                self.data()
            if "destroy" in steps:
                self.destroy_and_up()
            if keep:
                log(f"kept: pulumi destroy --stack {self.name} --yes")
                self.stack = None
            else:
                assert self.stack is not None
                self.stack.destroy(on_output=self._out, color="never")
                self.kube.run("delete", "namespace", self.namespace, "--wait=true", "--timeout=300s")
                self.stack = None
            self.report.print()
            self.timing_table()
            return 0
        except (Failure, subprocess.CalledProcessError) as exc:
            self.report.print()
            self.timing_table()
            log(f"FAILED: {exc}")
            if not keep:
                self.cleanup()
            return 1
        except Exception:
            self.report.print()
            log(f"FAILED unexpectedly:\n{traceback.format_exc()}")
            if not keep:
                self.cleanup()
            return 1
        finally:
            if not keep:
                with contextlib.suppress(auto.CommandError):
                    auto.LocalWorkspace(work_dir=str(ROOT)).remove_stack(self.name)
                (ROOT / f"Pulumi.{self.name}.yaml").unlink(missing_ok=True)
            shutil.rmtree(self.tls_dir, ignore_errors=True)
            self.log_file.close()


def tuple_of(key: str) -> tuple[str, int]:
    host, port = key.rsplit(":", 1)
    return host, int(port)


class ExecutorWatch:
    """Counts a running job's executor pods every two seconds."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.counts: list[int] = []
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(2):
            with contextlib.suppress(Exception):
                pods = self.kube.json("get", "pods", "-n", self.namespace, "-l", "spark-role=executor")[
                    "items"
                ]
                n = sum(1 for p in pods if p["status"].get("phase") in ("Pending", "Running"))
                if not self.counts or self.counts[-1] != n:
                    self.counts.append(n)
                self.peak = max(self.peak, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.e2e_prod", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=f"e2e-prod-{os.getpid()}", help="ephemeral stack name")
    parser.add_argument("--rows", type=int, default=200_000, help="events datagen writes")
    parser.add_argument("--no-build", action="store_true", help="push the images already built")
    parser.add_argument(
        "--peer",
        action="store_true",
        help="also time kubectl apply --server-side + kubectl wait of the same manifests (step 9)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack up at the end, or after a failure"
    )
    parser.add_argument(
        "--resume-at",
        choices=ProdEndToEnd.STEPS,
        help="take up the stack a --keep run left and start at this step",
    )
    args = parser.parse_args(argv)
    if shutil.which("pulumi") is None:
        print("pulumi is not on PATH: run scripts/bootstrap.sh and source its env.sh", file=sys.stderr)
        return 2
    run = ProdEndToEnd(args.stack, args.rows, build=not args.no_build, with_peer=args.peer)
    if not Path(run.cluster["ADMIN_KUBECONFIG"]).exists():
        print("no cluster: run make cluster first", file=sys.stderr)
        return 2
    return run.run(keep=args.keep, start_at=args.resume_at)


if __name__ == "__main__":
    sys.exit(main())
