"""The inference container with everything it reads, on loopback only.

A throwaway ``redis-server`` (online features; the gateway's rate limits
too), an S3 server (moto, in this process) holding the model registry, and
the project's inference image run with ``--network host`` so that every
variant of a benchmark reaches it on 127.0.0.1 without Docker's port proxy.

The model is ``tools.sample_model``'s (the layout ``jobs/train.py``
publishes, with fixed coefficients), and the online features are written
in the layout of ``jobs/online.py`` for ``ENTITIES`` entities with fixed
pseudo-random values.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import redis
from moto.server import ThreadedMotoServer

from benchmarks.inference.data import ENTITIES, entity_id, feature_rows
from benchmarks.inference.data import instances as data_instances
from benchmarks.loadgen import NICE, free_port, pinned, renice_tree, wait_http
from jobs import online
from jobs.schema import feature_names
from tools import redis_server, sample_model

MODEL_NAME = sample_model.MODEL_NAME
MODEL_VERSION = sample_model.MODEL_VERSION
FEATURES_VERSION = "bench"
BUCKET = "models"
IMAGE = "dataplatform/inference:bench"


def instances(count: int) -> list[dict[str, float]]:
    return data_instances(count, feature_names())


@dataclass(frozen=True)
class Stack:
    redis_port: int
    redis_password: str
    inference_url: str
    container: str
    workdir: Path
    redis_pid: int

    def redis_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port, password=self.redis_password)


def _write_features(client: redis.Redis) -> None:
    names = feature_names()
    rows = feature_rows(ENTITIES, len(names), seed=11)
    pipe = client.pipeline(transaction=False)
    for i, row in enumerate(rows):
        mapping = {name: online.format_value(float(v)) for name, v in zip(names, row, strict=True)}
        pipe.hset(online.entity_key(FEATURES_VERSION, entity_id(i)), mapping=mapping)  # type: ignore[arg-type]
    pipe.set(online.POINTER_KEY, FEATURES_VERSION)
    pipe.execute()


def _publish(endpoint: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    )
    s3.create_bucket(Bucket=BUCKET)
    sample_model.publish(s3, BUCKET)


@contextlib.contextmanager
def running(
    *, image: str = IMAGE, inference_cpus: str | None = None, redis_cpus: str | None = None
) -> Iterator[Stack]:
    """Redis, S3 and the inference container; all removed on exit."""
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        raise SystemExit(
            f"image {image} is missing: DATAPLATFORM_VERSION=bench bash scripts/build-images.sh inference"
        )
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dp-bench-")))
        workdir.chmod(0o755)
        password = os.urandom(12).hex()
        try:
            server = stack.enter_context(
                redis_server.throwaway(workdir, password, wrap=lambda argv: pinned(redis_cpus, argv))
            )
        except FileNotFoundError as missing:
            raise SystemExit(str(missing)) from None
        redis_port = server.port
        _write_features(redis.Redis(host="127.0.0.1", port=redis_port, password=password))

        s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        s3.start()
        stack.callback(s3.stop)
        host, port = s3.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _publish(endpoint)

        secrets = workdir / "secrets"
        secrets.mkdir()
        for name, value in {"redis": password, "s3-access": "bench", "s3-secret": "bench-secret"}.items():
            (secrets / name).write_text(value + "\n")
            (secrets / name).chmod(0o644)
        secrets.chmod(0o755)

        inference_port = free_port()
        name = f"dp-bench-inference-{os.getpid()}"
        argv = ["docker", "run", "-d", "--rm", "--name", name, "--network", "host"]
        argv += ["--read-only", "--tmpfs", "/tmp", "-v", f"{secrets}:/run/bench:ro"]
        # The dev stack's logging settings.
        argv += ["--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3"]
        if inference_cpus:
            argv += ["--cpuset-cpus", inference_cpus]
        if NICE["value"] < 0:
            # A container is one scheduling entity, of weight 1024 by default
            # like each other container; give it the weight of its nice level.
            argv += ["--cpu-shares", str(int(1024 * 1.25 ** -NICE["value"]))]
        env = {
            "INFERENCE_HOST": "127.0.0.1",
            "INFERENCE_PORT": str(inference_port),
            "INFERENCE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "INFERENCE_REDIS_PASSWORD_FILE": "/run/bench/redis",
            "INFERENCE_S3_ENDPOINT": endpoint,
            "INFERENCE_S3_ACCESS_KEY_FILE": "/run/bench/s3-access",
            "INFERENCE_S3_SECRET_KEY_FILE": "/run/bench/s3-secret",
            "INFERENCE_MODEL_NAME": MODEL_NAME,
            # No registry polls while measuring.
            "INFERENCE_POLL_SECONDS": "3600",
        }
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        subprocess.run([*argv, image], check=True, stdout=subprocess.DEVNULL)
        stack.callback(subprocess.run, ["docker", "rm", "-f", name], capture_output=True)
        url = f"http://127.0.0.1:{inference_port}"
        try:
            wait_http(f"{url}/readyz", timeout=90)
        except RuntimeError:
            logs = subprocess.run(["docker", "logs", "--tail", "30", name], capture_output=True, text=True)
            raise RuntimeError(f"inference did not get ready:\n{logs.stdout}{logs.stderr}") from None
        pid = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", name], check=True, stdout=subprocess.PIPE, text=True
        )
        renice_tree(int(pid.stdout))
        yield Stack(redis_port, password, url, name, workdir, server.pid)
