"""The dev stack deployed for real on the local Docker engine, end to end.

Run with ``make e2e`` (or ``python -m tools.e2e`` with the toolchain's
env.sh sourced). On an ephemeral stack that takes ``Pulumi.dev.yaml`` plus
what this machine needs (free host ports; stand-ins for Redis and
Prometheus and no Grafana when those official images cannot be had), it:

1. builds the project's images and brings the stack up; every container
   must report healthy;
2. submits ``datagen`` -> ``features`` -> ``train`` through the jobs CLI to
   the stack's Spark cluster (S3A to MinIO); features must be in Redis and
   the model and ``LATEST`` in MinIO;
3. calls the gateway: a known entity scores with the new model's version,
   no key is 401, a malformed body 4xx, a burst over the limit 429;
4. asks Prometheus for its targets (all up) and for every metric the alert
   rules and the dashboard read (each has series), and, if deployed,
   Grafana for the provisioned dashboard;
5. runs ``up`` again: zero changes;
6. kills the inference process: the gateway answers 5xx quickly, the
   container is restarted, predictions resume; replaces the Redis and MinIO
   containers: their data is still there;
7. stops the gateway's container: its ServiceDown alert reaches
   Alertmanager (through its API); ``refresh`` drops the stopped container
   from the state and ``up`` brings it back;
8. destroys the stack: no container or network left, data volumes kept
   (then removed by the test, which made them).

Every running container must have a read-only root filesystem, and its
files under /run/secrets must belong to its user with mode 0400.

A summary table of timings ends the run; the exit status is non-zero on
any failure.
"""

from __future__ import annotations

import argparse
import base64
import collections
import concurrent.futures
import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import docker
import redis
from botocore.config import Config as BotoConfig
from pulumi import automation as auto

from infra.project import PROJECT, ROOT
from infra.settings import settings_model
from monitoring import metrics
from tools.harness import merge_config, stack_config

MODEL = "churn"
STANDINS = {
    "redis": "dataplatform/redis-standin:7.0",
    "prometheus": "dataplatform/prometheus-standin:2.42",
    "alertmanager": "dataplatform/alertmanager-standin:0.25",
}
# Every host port the dev tier publishes, as config keys.
PORT_KEYS = tuple(settings_model()().model_dump(by_alias=True)["hostPorts"])


class Failure(Exception):
    pass


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def add(self, what: str, value: str) -> None:
        self.rows.append((what, value))
        log(f"{what}: {value}")

    def ok(self, what: str) -> None:
        self.checks.append(what)
        log(f"ok: {what}")

    def print(self) -> None:
        width = max(len(k) for k, _ in self.rows) if self.rows else 10
        print("\n" + "=" * (width + 30))
        print("end-to-end summary")
        print("=" * (width + 30))
        for key, value in self.rows:
            print(f"{key:<{width}}  {value}")
        print(f"\n{len(self.checks)} checks passed")


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise Failure(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


# -- HTTP ---------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- the machine ----------------------------------------------------------


def image_available(engine: docker.DockerClient, reference: str) -> bool:
    try:
        engine.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        pass
    try:
        engine.images.pull(reference)
        return True
    except docker.errors.APIError:
        return False


def machine_overrides(engine: docker.DockerClient) -> tuple[dict[str, Any], list[str]]:
    """Config this machine needs on top of Pulumi.dev.yaml, and why."""
    defaults = settings_model()()
    images: dict[str, str] = {}
    notes = []
    for name, standin in STANDINS.items():
        official = defaults.pinned_image(name)
        if not image_available(engine, official):
            images[name] = standin
            notes.append(f"{official} cannot be pulled here: using {standin}")
    overrides: dict[str, Any] = {}
    if images:
        overrides["images"] = images
    if not image_available(engine, defaults.pinned_image("grafana")):
        overrides["grafana"] = {"enabled": False}
        notes.append(f"{defaults.pinned_image('grafana')} cannot be pulled or built here: Grafana left out")
    overrides["hostPorts"] = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
    # High enough for the latency run, low enough for a burst to cross it.
    overrides["gateway"] = {"replicas": 1, "maxReplicas": 1, "rateLimit": 1500, "rateWindowSeconds": 60}
    # An alert within seconds of a service stopping, not minutes.
    overrides["monitoring"] = {
        "scrapeInterval": "5s",
        "evaluationInterval": "5s",
        "alertFor": {"ServiceDown": "10s"},
    }
    return overrides, notes


def engine_config(overrides: dict[str, Any]) -> dict[str, auto.ConfigValue]:
    """Pulumi.dev.yaml's config with ``overrides``, as the Automation API takes it."""
    config = merge_config(stack_config("dev"), overrides)
    return {
        f"{PROJECT}:{k}": auto.ConfigValue(v if isinstance(v, str) else json.dumps(v))
        for k, v in config.items()
    }


def jobs_submit_command(stack: str, job: str, *args: str) -> list[str]:
    """``python -m jobs submit`` against ``stack``, with the stack's own sizes."""
    return [
        str(ROOT / "jobs" / ".venv" / "bin" / "python"),
        "-m",
        "jobs",
        "submit",
        "--stack",
        stack,
        "--project-dir",
        str(ROOT),
        job,
        *args,
    ]


def write_seed_csv(path: Path) -> dict[str, str]:
    """Seed 002's kind of input: a header CSV whose values hold commas; returns
    the counts per ``column1`` value that event_counts must print."""
    rows = [[f"k{i % 7}", f"value, {i}", str(i)] for i in range(3000)]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["column1", "column2", "column3"])
        writer.writerows(rows)
    return {k: str(v) for k, v in collections.Counter(r[0] for r in rows).items()}


def printed_counts(output: str) -> dict[str, str]:
    """The ``value<TAB>count`` lines event_counts printed for the seed CSV."""
    return dict(line.split("\t") for line in output.splitlines() if re.fullmatch(r"k\d\t\d+", line))


def build_images() -> float:
    start = time.monotonic()
    subprocess.run(["bash", str(ROOT / "scripts" / "build-images.sh"), "--standins"], check=True)
    return time.monotonic() - start


# -- the run --------------------------------------------------------------


class EndToEnd:
    def __init__(self, name: str, rows: int, purge: bool, keep: bool = False) -> None:
        self.name = name
        self.keep = keep
        self.kept = False
        self.rows = rows
        self.purge = purge
        self.engine = docker.from_env(timeout=120)
        self.report = Report()
        self.log_file = open(ROOT / f".e2e-{name}.log", "w")  # noqa: SIM115 - closed in run()
        self.stack: auto.Stack | None = None
        self.outputs: dict[str, Any] = {}
        self.last_output = ""
        self.prefix = f"dataplatform-{name}"

    # -- pulumi -------------------------------------------------------

    def _out(self, line: str) -> None:
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def up(self, what: str, **kwargs: Any) -> tuple[auto.UpResult, float]:
        assert self.stack is not None
        log(f"pulumi up ({what}); engine output in {self.log_file.name}")
        try:
            return timed(lambda: self.stack.up(on_output=self._out, color="never", **kwargs))  # type: ignore[union-attr]
        except auto.CommandError as exc:
            raise Failure(f"pulumi up ({what}) failed:\n{str(exc)[-3000:]}") from None

    def refresh_outputs(self) -> None:
        assert self.stack is not None
        self.outputs = {k: v.value for k, v in self.stack.outputs().items()}

    # -- containers ---------------------------------------------------

    def containers(self) -> list[Any]:
        """The stack's containers: workloads and the carriers of their files."""
        found = []
        listed = [
            summary
            for label in ("dataplatform.workload", "dataplatform.files")
            for summary in self.engine.api.containers(
                all=True, filters={"label": label, "name": self.prefix + "-"}
            )
        ]
        for summary in listed:
            if not any(n.lstrip("/").startswith(self.prefix + "-") for n in summary["Names"]):
                continue
            # Containers of other projects may go away while we look.
            with contextlib.suppress(docker.errors.NotFound):
                found.append(self.engine.containers.get(summary["Id"]))
        return found

    def container(self, workload: str) -> Any:
        return self.engine.containers.get(f"{self.prefix}-{workload}")

    def health(self, container: Any) -> str:
        container.reload()
        state = container.attrs["State"]
        return (state.get("Health") or {}).get("Status") or state.get("Status")

    # -- steps ---------------------------------------------------------

    def deploy(self, overrides: dict[str, Any]) -> None:
        self.stack = auto.create_or_select_stack(stack_name=self.name, work_dir=str(ROOT))
        self.stack.set_all_config(engine_config(overrides))
        result, seconds = self.up("first")
        changes = result.summary.resource_changes or {}
        self.report.add("resources created", str(changes.get("create", 0)))
        self.report.add("up to healthy (images cached)", f"{seconds:.1f} s")
        self.refresh_outputs()
        long_running = [
            c for c in self.containers() if c.attrs["HostConfig"]["RestartPolicy"]["Name"] != "no"
        ]
        check(bool(long_running), "no platform container is running")
        unhealthy = {c.name: self.health(c) for c in long_running if self.health(c) != "healthy"}
        check(not unhealthy, f"containers not healthy after up: {unhealthy}")
        self.report.ok(f"{len(long_running)} long-running containers healthy")
        for c in long_running:
            for binding in (c.attrs["HostConfig"].get("PortBindings") or {}).values():
                for b in binding or []:
                    check(b["HostIp"] == "127.0.0.1", f"{c.name} publishes on {b['HostIp']}")
        self.report.ok("every published port bound to 127.0.0.1")
        self.hardening(long_running)

    def hardening(self, running: list[Any]) -> None:
        """Read-only roots, and secret files private to each container's user."""
        writable = [c.name for c in running if not c.attrs["HostConfig"]["ReadonlyRootfs"]]
        check(not writable, f"containers with a writable root filesystem: {writable}")
        checked = 0
        for c in running:
            if not any(m["Destination"] == "/run/secrets" for m in c.attrs["Mounts"]):
                continue
            uid = int(c.attrs["Config"]["User"].split(":")[0])
            stream, _ = c.get_archive("/run/secrets")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                for member in archive.getmembers():
                    if not member.isfile():
                        continue
                    mode = member.mode & 0o777
                    check(
                        mode == 0o400 and member.uid == uid,
                        f"{c.name}: {member.name} is {oct(mode)} owned by {member.uid}, not 0o400 by {uid}",
                    )
                    checked += 1
        check(checked > 0, "no secret file found to check")
        self.report.ok(
            f"{len(running)} running containers read-only; {checked} secret files 0400, owned by their user"
        )

    def submit(self, job: str, *args: str, expect_failure: bool = False) -> float:
        """``python -m jobs submit`` with the stack's own sizes (no size flags)."""
        command = jobs_submit_command(self.name, job, *args)
        log(f"submitting {job}")
        start = time.monotonic()
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
        self.last_output = completed.stdout + completed.stderr
        self._out(self.last_output)
        if expect_failure:
            check(completed.returncode != 0, f"job {job} {' '.join(args)} was expected to fail")
            return seconds
        check(
            completed.returncode == 0,
            f"job {job} failed ({completed.returncode}):\n{self.last_output[-3000:]}",
        )
        self.report.add(f"job {job}", f"{seconds:.1f} s")
        return seconds

    def credentials(self) -> dict[str, str]:
        return dict(self.outputs["platform_credentials"])

    def redis_client(self) -> redis.Redis:
        """Redis as its admin user: the jobs' user may only write features."""
        port = self.stack_config_ports()["redis"]
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            username="admin",
            password=self.outputs["redis_admin_password"],
            socket_timeout=5,
        )

    def online_prefix(self) -> str:
        """Key prefix of the live online features version (contract "Online features")."""
        live = self.redis_client().get("features:current")
        check(live is not None, "no live online features version in Redis (features:current)")
        return f"features:v:{live.decode() if isinstance(live, bytes) else live}:"

    def online_features(self, entity: str) -> dict[bytes, bytes]:
        return dict(self.redis_client().hgetall(self.online_prefix() + entity))

    def s3(self) -> Any:
        creds = self.credentials()
        return boto3.client(
            "s3",
            endpoint_url=self.outputs["minio_endpoint"],
            aws_access_key_id=creds["s3_access_key"],
            aws_secret_access_key=creds["s3_secret_key"],
            region_name="us-east-1",
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def stack_config_ports(self) -> dict[str, int]:
        assert self.stack is not None
        return dict(json.loads(self.stack.get_config(f"{PROJECT}:hostPorts").value))

    def pipeline(self) -> str:
        version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.submit("datagen", "--rows", str(self.rows), "--entities", "2000", "--overwrite")
        self.submit("features")
        self.submit("train", "--version", version)
        client = self.redis_client()
        entity = "u00000001"
        check(bool(self.online_features(entity)), f"no online features for {entity} in Redis")
        keys = sum(1 for _ in client.scan_iter(match=self.online_prefix() + "*", count=1000))
        self.report.add("entities in Redis", str(keys))
        buckets = self.outputs["buckets"]
        s3 = self.s3()
        latest = (
            s3.get_object(Bucket=buckets["models"], Key=f"{MODEL}/LATEST")["Body"].read().decode().strip()
        )
        check(latest == version, f"LATEST names {latest!r}, expected {version!r}")
        s3.head_object(Bucket=buckets["models"], Key=f"{MODEL}/{version}/model.onnx")
        meta = json.loads(
            s3.get_object(Bucket=buckets["models"], Key=f"{MODEL}/{version}/metadata.json")["Body"].read()
        )
        self.report.add("model AUC (held out)", str(meta.get("metrics", {}).get("auc")))
        self.report.ok("features in Redis, model and LATEST in MinIO")
        self.seed_job_on_a_local_csv()
        self.too_big_fails_fast()
        return version

    def seed_job_on_a_local_csv(self) -> None:
        """Seed 002's job on a CSV of the user's own, given as a local path:
        uploaded to the raw bucket, counted on the cluster, exactly."""
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "data.csv"
            expected = write_seed_csv(path)
            self.submit("event_counts", str(path), "--column", "column1")
        printed = printed_counts(self.last_output)
        check(printed == expected, f"event_counts printed {printed}, expected {expected}")
        check("uploading" in self.last_output, "the local CSV was not uploaded")
        self.report.ok("event_counts on a local CSV: uploaded, 7 groups counted exactly")

    def too_big_fails_fast(self) -> None:
        """An executor no worker can hold is refused before anything runs."""
        seconds = self.submit("datagen", "--rows", "10", "--executor-memory", "64g", expect_failure=True)
        check("fit no worker" in self.last_output, f"no reason given:\n{self.last_output[-2000:]}")
        check(seconds < 60, f"refusing an impossible job took {seconds:.0f} s")
        self.report.add("impossible job refused", f"{seconds:.1f} s")

    def gateway(self, version: str) -> None:
        url = self.outputs["gateway_url"].rstrip("/")
        key = self.credentials()["gateway_api_key"]
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = json.dumps({"entity_id": "u00000001"}).encode()

        def served() -> bool:
            reply = http("POST", f"{url}/v1/predict", body, auth)
            return reply.status == 200 and reply.json()["model"]["version"] == version

        wait_for("the gateway serving the new model", served, timeout=120)
        reply = http("POST", f"{url}/v1/predict", body, auth)
        score = reply.json()["predictions"][0]["score"]
        check(0.0 <= score <= 1.0, f"score out of range: {score}")
        self.report.ok(f"prediction through the gateway with model {version}")
        check(
            http("POST", f"{url}/v1/predict", body, {"Content-Type": "application/json"}).status == 401,
            "no key",
        )
        self.report.ok("no API key: 401")
        bad = http("POST", f"{url}/v1/predict", b'{"entity_id": ', auth)
        check(
            400 <= bad.status < 500 and "json" in bad.headers.get("content-type", ""),
            f"malformed: {bad.status}",
        )
        self.report.ok(f"malformed body: {bad.status} with a JSON error")
        unknown = http("POST", f"{url}/v1/predict", json.dumps({"entity_id": "nobody"}).encode(), auth)
        check(400 <= unknown.status < 500, f"unknown entity: {unknown.status}")
        self.report.ok(f"unknown entity: {unknown.status}")

        latencies = []
        for i in range(1000):
            entity = json.dumps({"entity_id": f"u{(i % 2000):08d}"}).encode()
            start = time.perf_counter()
            reply = http("POST", f"{url}/v1/predict", entity, auth)
            latencies.append((time.perf_counter() - start) * 1000)
            check(reply.status == 200, f"prediction {i}: {reply.status} {reply.body[:200]!r}")
        self.report.add(
            "gateway /v1/predict, 1,000 sequential",
            f"p50 {statistics.median(latencies):.2f} ms, p99 {percentile(latencies, 99):.2f} ms",
        )

        def one(_: int) -> Response:
            return http("POST", f"{url}/v1/predict", body, auth)

        # Whatever the key has left, plus a margin the refill during the
        # burst cannot cover: however slow the machine, the burst crosses it.
        # The window refills while the burst runs, the slower the machine the
        # more: keep going, a few hundred at a time, until the limit answers.
        remaining = int(one(0).headers.get("x-ratelimit-remaining", "0"))
        replies: list[Response] = []
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            replies.extend(pool.map(one, range(remaining + 300)))
            for _ in range(20):
                if any(r.status == 429 for r in replies):
                    break
                replies.extend(pool.map(one, range(300)))
        limited = [r for r in replies if r.status == 429]
        check(bool(limited), f"no 429 in a burst over the limit: {sorted({r.status for r in replies})}")
        check(
            "x-ratelimit-limit" in limited[0].headers,
            f"429 without X-RateLimit headers: {limited[0].headers}",
        )
        self.report.ok(f"burst over the limit: {len(limited)} of {len(replies)} answered 429")

    def monitoring(self) -> None:
        url = self.outputs["prometheus_url"].rstrip("/")

        def all_up() -> list[dict[str, Any]] | None:
            targets = http("GET", f"{url}/api/v1/targets").json()["data"]["activeTargets"]
            return targets if targets and all(t["health"] == "up" for t in targets) else None

        targets = wait_for("every Prometheus target up", all_up, timeout=90, interval=3)
        jobs = sorted({t["labels"]["job"] for t in targets})
        self.report.ok(f"Prometheus: {len(targets)} targets up ({', '.join(jobs)})")

        # Every metric the rules and the dashboard read has series here.
        samples = {
            sample: service.job
            for service in metrics.SERVICES
            for metric in service.metrics
            for sample in metric.samples
        }

        def series(name: str) -> int:
            query = urllib.parse.urlencode({"query": f'count({{__name__="{name}"}})'})
            result = http("GET", f"{url}/api/v1/query?{query}").json()["data"]["result"]
            return int(float(result[0]["value"][1])) if result else 0

        def all_present() -> bool:
            return all(series(name) for name in samples)

        with contextlib.suppress(Failure):
            wait_for("every catalogued metric in Prometheus", all_present, timeout=30, interval=3)
        missing = sorted(f"{samples[n]}: {n}" for n in samples if not series(n))
        check(
            not missing, f"metrics the alerts and dashboard read but Prometheus has no series of: {missing}"
        )
        self.report.ok(f"Prometheus has series of all {len(samples)} catalogued metrics")
        if "grafana_url" in self.outputs:
            token = base64.b64encode(f"admin:{self.outputs['grafana_admin_password']}".encode()).decode()
            found = http(
                "GET",
                f"{self.outputs['grafana_url']}/api/search",
                headers={"Authorization": f"Basic {token}"},
            )
            check(found.status == 200 and found.json(), f"Grafana dashboards: {found.status}")
            self.report.ok("Grafana lists the provisioned dashboard")

    def no_op(self) -> None:
        result, seconds = self.up("no-op")
        changes = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
        check(not changes, f"second up changed resources: {changes}")
        self.report.add("no-op up", f"{seconds:.1f} s, 0 changes")

    def resilience(self, version: str) -> None:
        url = self.outputs["gateway_url"].rstrip("/")
        auth = {
            "Authorization": f"Bearer {self.credentials()['gateway_api_key']}",
            "Content-Type": "application/json",
        }
        body = json.dumps({"entity_id": "u00000002"}).encode()
        inference = self.container("inference")
        restarts = inference.attrs["RestartCount"]
        # A crash: the service's processes die; the restart policy brings it back.
        inference.exec_run(["sh", "-c", "kill -KILL -1"], user=inference.attrs["Config"]["User"])
        start = time.monotonic()
        reply = wait_for(
            "the gateway answering 5xx while inference is down",
            lambda: (r := http("POST", f"{url}/v1/predict", body, auth, timeout=5)).status >= 500 and r,
            timeout=10,
            interval=0.05,
        )
        started = time.monotonic()
        http("POST", f"{url}/v1/predict", body, auth, timeout=5)
        self.report.add(
            "gateway with inference down", f"{reply.status} in {(time.monotonic() - started) * 1000:.0f} ms"
        )

        def back() -> bool:
            r = http("POST", f"{url}/v1/predict", body, auth, timeout=5)
            return r.status == 200 and r.json()["model"]["version"] == version

        wait_for("predictions resuming after the crash", back, timeout=120, interval=1)
        inference.reload()
        check(inference.attrs["RestartCount"] > restarts, "inference was not restarted by its policy")
        self.report.add("inference crash to serving again", f"{time.monotonic() - start:.1f} s")

        assert self.stack is not None
        urns = [
            r["urn"]
            for r in self.stack.export_stack().deployment["resources"]
            if r["type"] == "docker:index/container:Container" and r["urn"].endswith(("::redis", "::minio"))
        ]
        check(len(urns) == 2, f"redis and minio containers not found in the state: {urns}")
        self.up("replace redis and minio", replace=urns)
        self.refresh_outputs()
        check(
            bool(self.online_features("u00000001")), "features lost with the Redis container"
        )
        buckets = self.outputs["buckets"]
        latest = self.s3().get_object(Bucket=buckets["models"], Key=f"{MODEL}/LATEST")["Body"].read().decode()
        check(latest.strip() == version, "the model registry lost with the MinIO container")
        self.report.ok("Redis and MinIO data kept across container replacement")

    def alerting(self) -> None:
        """A stopped service's alert reaches Alertmanager; refresh and up
        then notice the stopped container and bring it back."""
        url = self.outputs["alertmanager_url"].rstrip("/")
        gateway = self.container("gateway")
        gateway.stop(timeout=10)
        start = time.monotonic()

        def alerted() -> bool:
            alerts = http("GET", f"{url}/api/v2/alerts").json()
            return any(
                a["labels"].get("alertname") == "ServiceDown"
                and a["labels"].get("job") == "gateway"
                and a["status"]["state"] == "active"
                for a in alerts
            )

        wait_for("ServiceDown for the gateway in Alertmanager", alerted, timeout=120, interval=1)
        self.report.add("gateway stopped to its alert in Alertmanager", f"{time.monotonic() - start:.1f} s")
        self.report.ok("ServiceDown{job=gateway} active in Alertmanager's API")

        assert self.stack is not None
        self.stack.refresh(on_output=self._out, color="never")
        result, seconds = self.up("after the gateway stopped")
        changes = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
        # Refresh also reads each image by its tag: containers of a tag
        # rebuilt meanwhile (by another build on this engine) are replaced.
        check(
            changes.get("create") == 1 and set(changes) <= {"create", "replace"},
            f"up after refresh: {changes}, expected the gateway created",
        )
        check(self.health(self.container("gateway")) == "healthy", "the recreated gateway is not healthy")
        self.report.add("refresh + up recreating the stopped gateway", f"{seconds:.1f} s (up)")

    def destroy(self) -> None:
        assert self.stack is not None
        volumes_before = {
            v.name for v in self.engine.volumes.list(filters={"label": "dataplatform.data=true"})
        }
        mine = {v for v in volumes_before if v.startswith(self.prefix + "-")}
        _, seconds = timed(lambda: self.stack.destroy(on_output=self._out, color="never"))  # type: ignore[union-attr]
        self.report.add("destroy", f"{seconds:.1f} s")
        left = [c.name for c in self.containers()]
        check(not left, f"containers left after destroy: {left}")
        check(not self.engine.networks.list(names=[self.prefix]), "network left after destroy")
        kept = {v.name for v in self.engine.volumes.list()} & mine
        if self.purge:
            check(bool(mine) and not kept, f"volumes left despite purgeOnDestroy: {kept}")
            self.report.ok(f"destroy with purgeOnDestroy removed {len(mine)} data volumes")
        else:
            check(kept == mine and bool(mine), f"data volumes not kept: had {mine}, kept {kept}")
            self.report.ok(f"destroy kept {len(kept)} data volumes")
            for name in kept:
                self.engine.volumes.get(name).remove()

    def cleanup(self) -> None:
        """After a failure: leave nothing of this run behind."""
        if self.stack is None:
            return
        try:
            self.stack.destroy(on_output=self._out, color="never")
        except auto.CommandError as exc:
            log(f"cleanup: destroy failed: {str(exc)[-500:]}")
        for volume in self.engine.volumes.list(filters={"label": "dataplatform.data=true"}):
            if volume.name.startswith(self.prefix + "-"):
                volume.remove(force=True)

    def run(self, build: bool) -> int:
        try:
            overrides, notes = machine_overrides(self.engine)
            if self.purge:
                overrides["purgeOnDestroy"] = True
            for note in notes:
                self.report.add("machine", note)
            if build:
                self.report.add("images built (build-images.sh)", f"{build_images():.0f} s")
            self.deploy(overrides)
            version = self.pipeline()
            self.gateway(version)
            self.monitoring()
            self.no_op()
            self.resilience(version)
            self.alerting()
            if self.keep:
                self.report.print()
                log(f"kept: pulumi destroy --stack {self.name} --yes && pulumi stack rm {self.name} --yes")
                self.kept = True
                return 0
            self.destroy()
            self.stack = None
            self.report.print()
            return 0
        except (Failure, subprocess.CalledProcessError) as exc:
            self.report.print()
            log(f"FAILED: {exc}")
            self.cleanup()
            return 1
        except Exception:
            self.report.print()
            log(f"FAILED unexpectedly:\n{traceback.format_exc()}")
            self.cleanup()
            return 1
        finally:
            if not self.kept:
                self._forget_stack()
            self.log_file.close()

    def _forget_stack(self) -> None:
        with contextlib.suppress(auto.CommandError):
            auto.LocalWorkspace(work_dir=str(ROOT)).remove_stack(self.name)
        (ROOT / f"Pulumi.{self.name}.yaml").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=f"e2e-{os.getpid()}", help="ephemeral stack name")
    parser.add_argument("--rows", type=int, default=200_000, help="events datagen writes")
    parser.add_argument("--no-build", action="store_true", help="skip scripts/build-images.sh")
    parser.add_argument("--purge", action="store_true", help="destroy with purgeOnDestroy")
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack up after the checks (benchmarks)"
    )
    args = parser.parse_args(argv)
    if shutil.which("pulumi") is None:
        print("pulumi is not on PATH: run scripts/bootstrap.sh and source its env.sh", file=sys.stderr)
        return 2
    run = EndToEnd(args.stack, args.rows, args.purge, keep=args.keep)
    return run.run(build=not args.no_build)


if __name__ == "__main__":
    sys.exit(main())
