"""A redis-server (Debian's) on loopback, configured as the stack configures
Redis: the generated ACL users, maxmemory and policy."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from dataplatform.services.redis import USERS, maxmemory, redis_conf
from tools.redis_server import binary, free_port, wait_answering

PASSWORDS = {user: f"{user}-password-0123456789" for user in USERS}


def client(port: int, user: str | None, db: int = 0, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        db=db,
        username=user,
        password=password if password is not None else PASSWORDS.get(user or "", "x"),
        socket_timeout=5,
    )


@contextmanager
def stack_redis(work: Path, extra: str = "") -> Iterator[int]:
    """Runs the stack's Redis configuration on a free loopback port; yields
    the port. ``extra`` is appended to the configuration."""
    port = free_port()
    conf = redis_conf(PASSWORDS, maxmemory("512Mi", 0.45), "volatile-lru")
    # The container's file, pointed at loopback and a temporary directory.
    conf = conf.replace("port 6379", f"port {port}").replace("bind * -::*", "bind 127.0.0.1")
    conf = conf.replace("dir /data", f"dir {work}") + extra
    (work / "redis.conf").write_text(conf)
    process = subprocess.Popen(
        [binary(), str(work / "redis.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_answering(process, port, PASSWORDS["health"], username="health")
        yield port
    finally:
        process.terminate()
        process.wait(10)
