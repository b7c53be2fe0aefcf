"""Redis under its container's memory limit, on the real Docker engine, with
the stack's configuration (ACL users, maxmemory, volatile-lru, AOF).

Filled to twice ``maxmemory`` with keys that have a TTL, it evicts; an AOF
rewrite under write load then forks, and the child's copy-on-write pages
count against the same limit. At the stack's ratio (0.45 of the limit)
Redis survives; at 0.95 the same load gets it OOM-killed, which is why the
ratio leaves that much room.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import pytest
import redis

from dataplatform.services.redis import IMAGE, RedisSettings, maxmemory, redis_conf
from tests.local_redis import PASSWORDS
from tools.harness import ROOT

LIMIT = "128Mi"
VALUE = b"x" * 16384


STANDIN = "dataplatform/redis-standin:7.0"


def image(engine: docker.DockerClient) -> str:
    """The official image if this engine has it, else the stand-in, built
    here when missing (Debian's redis-server; half a minute)."""
    for candidate in (IMAGE, STANDIN):
        try:
            engine.images.get(candidate)
            return candidate
        except docker.errors.ImageNotFound:
            continue
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-images.sh"), "redis-standin"], capture_output=True, text=True
    )
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    return STANDIN


@pytest.fixture()
def engine() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.skip(f"needs a Docker engine (scripts/bootstrap.sh): {exc}")
    return client


@contextmanager
def start(engine: docker.DockerClient, ratio: float) -> Iterator[tuple[Any, redis.Redis]]:
    limit = 128 * 1024 * 1024
    conf = redis_conf(PASSWORDS, maxmemory(LIMIT, ratio), "volatile-lru")
    container = engine.containers.run(
        image(engine),
        ["sh", "-c", 'printf "%s" "$REDIS_CONF" > /tmp/redis.conf && exec redis-server /tmp/redis.conf'],
        environment={"REDIS_CONF": conf},
        name=f"dp-redis-memory-{uuid.uuid4().hex[:8]}",
        detach=True,
        mem_limit=limit,
        memswap_limit=limit,
        # /data: the image's own (anonymous) volume, on disk like the stack's.
        ports={"6379/tcp": ("127.0.0.1", None)},
        user="999:999",
    )
    try:
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["6379/tcp"][0]["HostPort"])
        client = redis.Redis(
            host="127.0.0.1", port=port, username="admin", password=PASSWORDS["admin"], socket_timeout=30
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield container, client
    finally:
        container.remove(force=True, v=True)


def fill(client: redis.Redis, keys: int, prefix: str) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"{prefix}:{i}", VALUE, ex=3600)
        if i % 200 == 199:
            pipe.execute()
    pipe.execute()


def load_and_rewrite(client: redis.Redis, ratio: float) -> None:
    """Twice maxmemory in keys, then an AOF rewrite while writing on."""
    fill(client, 2 * maxmemory(LIMIT, ratio) // len(VALUE), "fill")
    try:
        client.bgrewriteaof()
    except redis.ResponseError as error:
        # The fill's growth may have started one already (auto-aof-rewrite):
        # that rewrite is the one under test then.
        if "already in progress" not in str(error):
            raise
    started = time.monotonic()
    while True:
        persistence = client.info("persistence")
        if not (persistence["aof_rewrite_in_progress"] or persistence.get("aof_rewrite_scheduled")):
            break
        # Keep writing while the child copies: copy-on-write at its worst.
        fill(client, 400, f"during:{time.monotonic()}")
        assert time.monotonic() - started < 120, "the rewrite did not finish"


def test_at_the_stacks_ratio_redis_evicts_and_survives_an_aof_rewrite(engine: docker.DockerClient) -> None:
    ratio = RedisSettings().maxmemory_ratio
    with start(engine, ratio) as (container, client):
        load_and_rewrite(client, ratio)
        memory, stats = client.info("memory"), client.info("stats")
        assert stats["evicted_keys"] > 0
        # What eviction counts: the AOF buffer is not part of the data set.
        counted = memory["used_memory"] - memory.get("mem_not_counted_for_evict", 0)
        assert counted <= maxmemory(LIMIT, ratio) * 1.05
        assert client.info("persistence")["aof_last_bgrewrite_status"] == "ok"
        container.reload()
        state = container.attrs["State"]
        assert state["Running"] and not state["OOMKilled"], state
        print(
            f"limit {LIMIT}, maxmemory {maxmemory(LIMIT, ratio)} B, used_memory_peak "
            f"{memory['used_memory_peak']} B, evicted {stats['evicted_keys']} keys, rewrite ok"
        )


def test_without_the_headroom_the_same_load_gets_redis_oom_killed(engine: docker.DockerClient) -> None:
    with start(engine, 0.95) as (container, client):
        with pytest.raises(redis.ConnectionError):
            load_and_rewrite(client, 0.95)
        container.reload()
        assert container.attrs["State"]["OOMKilled"], container.attrs["State"]
