"""kubectl against the local cluster: commands, JSON, apply, port-forwards."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from tools.e2e_common.report import Failure


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
