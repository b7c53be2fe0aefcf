"""The bookkeeping of an end-to-end run: its summary, the checks that fail it, waiting and timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Failure(Exception):
    pass


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


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


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    interval: float = 1.0,
    state: Callable[[], str] | None = None,
) -> Any:
    """``probe()``'s first truthy result within ``timeout``. On a timeout the
    failure names the last result, or ``state()`` where a bare False would
    say nothing of what was seen."""
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
    seen = state() if state is not None and not isinstance(last, Exception) else repr(last)
    raise Failure(f"{what}: not within {timeout:.0f}s (last: {seen})")
