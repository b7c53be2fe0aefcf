"""A throwaway redis-server on a free loopback port, for test suites and benchmarks (standard library only).

The inference service's tests load this file by path (their environment has
none of the repository's packages), so it imports nothing but the standard
library.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

MISSING = "redis-server is not installed (Debian package redis-server)"


class Running(NamedTuple):
    port: int
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError(MISSING)
    return found


def _command(*parts: str) -> bytes:
    encoded = [p.encode() for p in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)


def answers(port: int, password: str, username: str | None = None) -> bool:
    """Whether the server on ``port`` takes the credentials and answers PING."""
    auth = ("AUTH", username, password) if username else ("AUTH", password)
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(_command(*auth) + _command("PING"))
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply == b"+OK\r\n+PONG\r\n"


def wait_answering(
    process: subprocess.Popen[bytes], port: int, password: str, username: str | None = None
) -> None:
    """Until the server answers; kills it and raises RuntimeError (with its
    output, if piped) if it exits or does not answer within 10 seconds."""
    deadline = time.monotonic() + 10
    while not answers(port, password, username):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError("redis-server did not start" + (f":\n{output}" if output else ""))
        time.sleep(0.05)


@contextlib.contextmanager
def throwaway(
    workdir: Path, password: str, wrap: Callable[[list[str]], list[str]] = list
) -> Iterator[Running]:
    """redis-server with ``password``, no persistence, its files in
    ``workdir``; ``wrap`` may prefix its command line (CPU pinning).
    Stopped on exit. FileNotFoundError if there is no redis-server."""
    port = free_port()
    argv = [binary(), "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password]
    argv += ["--dir", str(workdir), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(wrap(argv), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_answering(process, port, password)
        yield Running(port, process.pid)
    finally:
        process.terminate()
        process.wait(10)
