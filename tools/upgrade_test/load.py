"""A steady load of predictions through the gateway while something else happens, every answer counted."""

from __future__ import annotations

import collections
import http.client
import threading
import time
from dataclasses import dataclass, field

from tools.e2e_common import gateway as scenario
from tools.e2e_common.gateway import Send

# Requests per second, spread over a few senders so one slow answer does
# not stall the rest: a steady trickle, not a benchmark.
RATE = 20
SENDERS = 4


@dataclass
class Tally:
    """What the load saw: statuses, requests that got no answer, the slowest answer."""

    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    unanswered: list[tuple[float, str]] = field(default_factory=list)
    slowest_ms: float = 0.0
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + len(self.unanswered)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def describe(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"{self.sent} predictions in {self.seconds:.0f} s ({statuses}; "
            f"no answer: {len(self.unanswered)}), slowest {self.slowest_ms:.0f} ms"
        )


class SteadyLoad:
    """Predictions for known entities at ``RATE`` per second until stopped."""

    def __init__(self, send: Send, key: str, entities: list[str]) -> None:
        self.send = send
        self.key = key
        self.entities = entities
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start = 0.0

    def __enter__(self) -> SteadyLoad:
        self._start = time.monotonic()
        for index in range(SENDERS):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self.tally.seconds = time.monotonic() - self._start

    def _run(self, index: int) -> None:
        interval = SENDERS / RATE
        due = time.monotonic() + index * interval / SENDERS
        count = index
        headers = scenario.auth(self.key)
        while not self._stop.is_set():
            body = scenario.entity(self.entities[count % len(self.entities)])
            count += SENDERS
            started = time.monotonic()
            try:
                status: int | None = self.send("POST", scenario.PREDICT, body, headers).status
                error = ""
            except (OSError, http.client.HTTPException) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            elapsed_ms = (time.monotonic() - started) * 1000
            with self._lock:
                if status is None:
                    self.tally.unanswered.append((started - self._start, error))
                else:
                    self.tally.statuses[status] += 1
                self.tally.slowest_ms = max(self.tally.slowest_ms, elapsed_ms)
            due += interval
            self._stop.wait(max(0.0, due - time.monotonic()))
