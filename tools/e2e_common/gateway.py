"""The gateway scenario both tiers run: model served, no key refused, latencies, a burst over the limit."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable

from tools.e2e_common.report import check, wait_for
from tools.e2e_common.web import Response, http

PREDICT = "/v1/predict"
JSON = {"Content-Type": "application/json"}

# One way in to the gateway (a URL, an Ingress): method, path, body, headers.
Send = Callable[[str, str, bytes | None, dict[str, str]], Response]


def at_url(url: str) -> Send:
    """The gateway at ``url`` (no trailing slash), over plain HTTP."""

    def send(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        return http(method, f"{url}{path}", body, headers)

    return send


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **JSON}


def entity(entity_id: str) -> bytes:
    return json.dumps({"entity_id": entity_id}).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait_served(what: str, send: Send, key: str, version: str, timeout: float, interval: float = 1.0) -> None:
    """Until a prediction answers 200 with the model ``version``."""

    def served() -> bool:
        reply = send("POST", PREDICT, entity("u00000001"), auth(key))
        return reply.status == 200 and reply.json()["model"]["version"] == version

    wait_for(what, served, timeout=timeout, interval=interval)


def check_no_key(send: Send, what: str) -> None:
    status = send("POST", PREDICT, entity("u00000001"), JSON).status
    check(status == 401, f"{what}: {status}")


def latencies(send: Send, key: str, count: int) -> list[float]:
    """Milliseconds of ``count`` sequential predictions over 2,000 entities; each must answer 200."""
    found = []
    for i in range(count):
        body = entity(f"u{(i % 2000):08d}")
        start = time.perf_counter()
        reply = send("POST", PREDICT, body, auth(key))
        found.append((time.perf_counter() - start) * 1000)
        check(reply.status == 200, f"prediction {i}: {reply.status} {reply.body[:200]!r}")
    return found


def burst(send: Send, key: str, count_unanswered: bool = False) -> list[Response]:
    """Predictions 16 at a time until the rate limit answers 429.

    Whatever the key has left, plus a margin the refill during the burst
    cannot cover: however slow the machine, the burst crosses it. The window
    refills while the burst runs, the slower the machine the more: keep
    going, a few hundred at a time, until the limit answers. With
    ``count_unanswered`` a request that gets no answer is status -1.
    """
    body, headers = entity("u00000001"), auth(key)

    def one(_: int) -> Response:
        try:
            return send("POST", PREDICT, body, headers)
        except OSError:
            if not count_unanswered:
                raise
            return Response(-1, {}, b"")

    remaining = int(send("POST", PREDICT, body, headers).headers.get("x-ratelimit-remaining", "0"))
    replies: list[Response] = []
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies.extend(pool.map(one, range(remaining + 300)))
        for _ in range(20):
            if any(r.status == 429 for r in replies):
                break
            replies.extend(pool.map(one, range(300)))
    return replies
