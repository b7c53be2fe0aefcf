"""Dev step 3: predictions through the gateway's port: the model, refusals, latencies, the rate limit."""

from __future__ import annotations

import statistics

from tools.e2e.stack import DevStack
from tools.e2e_common import gateway as scenario
from tools.e2e_common.report import check


def gateway(dev: DevStack, version: str) -> None:
    send = scenario.at_url(dev.outputs["gateway_url"].rstrip("/"))
    key = dev.credentials()["gateway_api_key"]
    scenario.wait_served("the gateway serving the new model", send, key, version, timeout=120)
    reply = send("POST", scenario.PREDICT, scenario.entity("u00000001"), scenario.auth(key))
    score = reply.json()["predictions"][0]["score"]
    check(0.0 <= score <= 1.0, f"score out of range: {score}")
    dev.report.ok(f"prediction through the gateway with model {version}")
    scenario.check_no_key(send, "no key")
    dev.report.ok("no API key: 401")
    bad = send("POST", scenario.PREDICT, b'{"entity_id": ', scenario.auth(key))
    check(
        400 <= bad.status < 500 and "json" in bad.headers.get("content-type", ""),
        f"malformed: {bad.status}",
    )
    dev.report.ok(f"malformed body: {bad.status} with a JSON error")
    unknown = send("POST", scenario.PREDICT, scenario.entity("nobody"), scenario.auth(key))
    check(400 <= unknown.status < 500, f"unknown entity: {unknown.status}")
    dev.report.ok(f"unknown entity: {unknown.status}")

    found = scenario.latencies(send, key, 1000)
    dev.report.add(
        "gateway /v1/predict, 1,000 sequential",
        f"p50 {statistics.median(found):.2f} ms, p99 {scenario.percentile(found, 99):.2f} ms",
    )

    replies = scenario.burst(send, key)
    limited = [r for r in replies if r.status == 429]
    check(bool(limited), f"no 429 in a burst over the limit: {sorted({r.status for r in replies})}")
    check(
        "x-ratelimit-limit" in limited[0].headers,
        f"429 without X-RateLimit headers: {limited[0].headers}",
    )
    dev.report.ok(f"burst over the limit: {len(limited)} of {len(replies)} answered 429")
