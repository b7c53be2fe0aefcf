"""Local inputs of a job submitted to a stack: uploaded to the raw bucket.

A user's first try is a file on their own machine. The job runs in a
container or pod that cannot see it, so ``submit`` uploads it to the stack's
raw bucket (through the published endpoint on dev, a ``kubectl
port-forward`` on the stack's own cluster and context on prod) and gives
the job the ``s3a://`` URI instead.
Outputs must already be store URIs: a local path there would be written
inside a container that is gone when the job ends.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from jobs.conventions import LANDING_PREFIX
from jobs.definitions import JOBS
from jobs.errors import JobError
from jobs.quantity import MIB
from jobs.stack_outputs import KubeAccess, StackTarget

UPLOAD_PREFIX = "uploads"
PROGRESS_MIN_BYTES = 8 * MIB


def is_store_uri(value: str) -> bool:
    return "://" in value


def argument_values(argv: Sequence[str], job: str) -> dict[str, str | None]:
    parsed = JOBS[job].parser(prog=job).parse_args(list(argv))
    return {name: getattr(parsed, name, None) for name in (*JOBS[job].inputs, *JOBS[job].outputs)}


def check_outputs(job: str, argv: Sequence[str]) -> None:
    """Outputs of a job on a stack go to the object store, not to a path
    inside a container that is gone when the job ends."""
    values = argument_values(argv, job)
    for name in JOBS[job].outputs:
        value = values.get(name)
        if value and not is_store_uri(value):
            option = "--" + name.replace("_", "-")
            raise JobError(
                f"{option} {value} is a local path; a job on a stack writes to the object store: "
                f"give an s3a://<bucket>/<path> URI"
            )


def replace_argument(argv: Sequence[str], old: str, new: str) -> list[str]:
    """``argv`` with the value ``old`` (a positional, ``--opt old`` or
    ``--opt=old``) replaced by ``new``."""
    result: list[str] = []
    for token in argv:
        if token == old:
            result.append(new)
        elif token.startswith("--") and "=" in token and token.split("=", 1)[1] == old:
            result.append(f"{token.split('=', 1)[0]}={new}")
        else:
            result.append(token)
    return result


def local_inputs(job: str, argv: Sequence[str]) -> list[str]:
    """The job's input arguments that name local files or directories."""
    values = argument_values(argv, job)
    found = []
    for name in JOBS[job].inputs:
        value = values.get(name)
        if not value or is_store_uri(value):
            continue
        if not os.path.exists(value):
            raise JobError(f"input {value} is neither a local file or directory nor an s3a:// URI")
        found.append(value)
    return found


def files_under(path: str) -> list[tuple[str, str]]:
    """(local file, key relative to the upload's root) for a file or a tree."""
    if os.path.isfile(path):
        return [(path, os.path.basename(path))]
    base = os.path.basename(os.path.normpath(path))
    entries = []
    for root, _, names in os.walk(path):
        for name in sorted(names):
            full = os.path.join(root, name)
            entries.append((full, f"{base}/{os.path.relpath(full, path)}"))
    if not entries:
        raise JobError(f"input directory {path} is empty")
    return entries


def content_digest(files: Sequence[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for full, key in files:
        digest.update(key.encode())
        with open(full, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


class Progress:
    """Upload progress on stderr, for files big enough to wait for."""

    def __init__(self, name: str, size: int, out: Callable[[str], None]) -> None:
        self.name, self.size, self.out = name, size, out
        self.sent = 0
        self.shown = -1
        self.lock = threading.Lock()

    def __call__(self, chunk: int) -> None:
        with self.lock:
            self.sent += chunk
            percent = 100 * self.sent // max(1, self.size)
            if percent // 10 != self.shown // 10 or self.sent >= self.size:
                self.shown = percent
                done, size = self.sent / MIB, self.size / MIB
                self.out(f"  {self.name}: {done:,.1f} of {size:,.1f} MiB ({percent}%)")


def upload_inputs(
    paths: Sequence[str],
    *,
    endpoint: str,
    bucket: str,
    access_key: str,
    secret_key: str,
    out: Callable[[str], None] = print,
) -> dict[str, str]:
    """Upload local inputs to ``bucket``; returns local path -> s3a:// URI.

    Each input lands under ``uploads/<content digest>/<name>``, so the same
    data is uploaded once and a changed file never overwrites what an earlier
    run read.
    """
    client = s3_client(endpoint, {"s3_access_key": access_key, "s3_secret_key": secret_key})
    uris: dict[str, str] = {}
    for path in paths:
        files = files_under(path)
        prefix = f"{UPLOAD_PREFIX}/{content_digest(files)}"
        total = sum(os.path.getsize(full) for full, _ in files)
        out(f"uploading {path} ({total / MIB:,.1f} MiB) to s3a://{bucket}/{prefix}/")
        for full, key in files:
            size = os.path.getsize(full)
            callback = Progress(key, size, out) if size >= PROGRESS_MIN_BYTES else None
            try:
                client.upload_file(full, bucket, f"{prefix}/{key}", Callback=callback)
            except Exception as exc:  # botocore raises many kinds; all mean the same here
                raise JobError(f"cannot upload {full} to s3://{bucket}/{prefix}/{key}: {exc}") from exc
        uris[path] = f"s3a://{bucket}/{prefix}/{files[0][1].split('/')[0]}"
    return uris


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_of(endpoint: str, namespace: str) -> tuple[str, str, int]:
    """(namespace, Service, port) of an in-cluster URL such as
    ``http://minio:9000`` or ``http://minio.data.svc.cluster.local:9000``.
    A short name is resolved as the pods that use it resolve it: in their own
    ``namespace``."""
    inside = urlsplit(endpoint)
    labels = (inside.hostname or "minio").split(".")
    if len(labels) >= 2 and labels[1] != "svc":
        namespace = labels[1]
    return namespace, labels[0], inside.port or 9000


@contextmanager
def port_forward(access: KubeAccess, namespace: str, service: str, port: int) -> Iterator[str]:
    """A loopback endpoint to a Service of the stack's cluster, for the upload."""
    local = free_port()
    process = subprocess.Popen(
        access.kubectl(namespace, "port-forward", f"svc/{service}", f"{local}:{port}"),
        env=access.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise JobError(
                    f"kubectl port-forward to svc/{service} in namespace {namespace} "
                    f"({access.describe()}) failed: {output.strip()}"
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", local)) == 0:
                    break
            time.sleep(0.2)
        else:
            raise JobError(f"kubectl port-forward to svc/{service} did not open port {local} in 20 s")
        yield f"http://127.0.0.1:{local}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def store_endpoint(spark_submit: Mapping[str, Any], kube: KubeAccess | None) -> Iterator[str]:
    """An endpoint of the stack's object store reachable from here: the
    published one on dev, a port-forward on the stack's cluster on prod."""
    env = spark_submit.get("env") or {}
    if spark_submit.get("tier") == "dev":
        endpoint = str(spark_submit.get("s3_endpoint") or "")
        if not endpoint:
            raise JobError("the stack publishes no object store endpoint to upload to")
        yield endpoint
        return
    if kube is None:
        raise JobError("uploading to a prod stack needs the cluster the stack recorded")
    namespace, service, port = service_of(
        str(env.get("DP_S3_ENDPOINT", "http://minio:9000")), str(spark_submit["namespace"])
    )
    with port_forward(kube, namespace, service, port) as endpoint:
        yield endpoint


def raw_bucket(spark_submit: Mapping[str, Any]) -> str:
    env = spark_submit.get("env") or {}
    bucket = str(spark_submit.get("raw_bucket") or env.get("DP_RAW_BUCKET") or "")
    if not bucket:
        raise JobError("the stack names no raw bucket to upload to")
    return bucket


def s3_client(endpoint: str, credentials: Mapping[str, str]) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise JobError("uploading needs boto3 (installed in the project's .venv by `make up`)") from exc
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=str(credentials.get("s3_access_key", "")),
        aws_secret_access_key=str(credentials.get("s3_secret_key", "")),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def landing_key(path: str, when: float | None = None) -> str:
    """A landed file's key: its time and a random tag ahead of its own name,
    so two landings of one file name never overwrite each other."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if when is None else when))
    return f"{LANDING_PREFIX}/{stamp}-{secrets.token_hex(4)}-{os.path.basename(path)}"


def require_files(paths: Sequence[str]) -> None:
    """Fail naming the first path that is not a file."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise JobError(f"not a file: {missing[0]}")


def ingest(paths: Sequence[str], target: StackTarget, out: Callable[[str], None] = print) -> list[str]:
    """Land local event files on the stack for the streaming job; returns
    their URIs. Each object appears whole (one PUT), so the stream never
    reads half a file."""
    require_files(paths)
    bucket = raw_bucket(target.spark_submit)
    kube = target.kube() if target.tier == "prod" else None
    landed: list[str] = []
    with store_endpoint(target.spark_submit, kube) as endpoint:
        client = s3_client(endpoint, target.credentials)
        for path in paths:
            key = landing_key(path)
            try:
                client.upload_file(path, bucket, key)
            except Exception as exc:  # botocore raises many kinds; all mean the same here
                raise JobError(f"cannot upload {path} to s3://{bucket}/{key}: {exc}") from exc
            landed.append(f"s3a://{bucket}/{key}")
            out(f"landed {path} as s3a://{bucket}/{key}")
    return landed


def stage_local_inputs(
    job: str,
    argv: Sequence[str],
    spark_submit: Mapping[str, Any],
    credentials: Mapping[str, str],
    *,
    kube: KubeAccess | None = None,
) -> list[str]:
    """Upload the job's local inputs and point its arguments at the copies.

    On prod the upload goes through a port-forward on ``kube``, the cluster
    and context the stack recorded."""
    paths = local_inputs(job, argv)
    if not paths:
        return list(argv)
    bucket = raw_bucket(spark_submit)
    with store_endpoint(spark_submit, kube) as endpoint:
        uris = upload_inputs(
            paths,
            endpoint=endpoint,
            bucket=bucket,
            access_key=str(credentials.get("s3_access_key", "")),
            secret_key=str(credentials.get("s3_secret_key", "")),
        )
    staged = list(argv)
    for local, uri in uris.items():
        staged = replace_argument(staged, local, uri)
    return staged
