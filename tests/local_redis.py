"""A redis-server (Debian's) on loopback, configured as the stack configures
Redis: the generated ACL users, maxmemory and policy."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from infra.services.redis import USERS, maxmemory, redis_conf

PASSWORDS = {user: f"{user}-password-0123456789" for user in USERS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (scripts/test-deps.sh installs Debian's)")
    port = free_port()
    conf = redis_conf(PASSWORDS, maxmemory("512Mi", 0.45), "volatile-lru")
    # The container's file, pointed at loopback and a temporary directory.
    conf = conf.replace("port 6379", f"port {port}").replace("bind * -::*", "bind 127.0.0.1")
    conf = conf.replace("dir /data", f"dir {work}") + extra
    (work / "redis.conf").write_text(conf)
    process = subprocess.Popen(
        [binary, str(work / "redis.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client(port, "health").ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise RuntimeError(f"redis-server did not start:\n{output}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)
