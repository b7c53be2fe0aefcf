"""The Spark History Server's REST API: which finished applications it lists."""

from __future__ import annotations

import collections
import json
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from tools.e2e_common.report import Report, wait_for

# The name every job's SparkSession gives its application, in both tiers.
APP_NAME = "dataplatform-{job}"


def completed(base_url: str) -> list[dict[str, Any]]:
    """``/api/v1/applications?status=completed``: applications whose every
    attempt has ended."""
    url = f"{base_url.rstrip('/')}/api/v1/applications?status=completed"
    with urllib.request.urlopen(url, timeout=10) as response:
        apps: list[dict[str, Any]] = json.load(response)
    return [a for a in apps if a.get("attempts") and all(t.get("completed") for t in a["attempts"])]


def check_listed(
    base_url: str, jobs: Sequence[str], report: Report, ended_at: float | None = None, timeout: float = 60
) -> None:
    """The History Server lists a completed application for each of ``jobs``
    (a job named twice: two of its applications) within ``timeout``. With
    ``ended_at`` (the last job's end, in ``time.monotonic()``), reports how
    long after it they were all listed."""
    wanted = collections.Counter(APP_NAME.format(job=job) for job in jobs)
    listed: collections.Counter[str] = collections.Counter()

    def all_listed() -> bool:
        listed.clear()
        listed.update(str(a.get("name")) for a in completed(base_url))
        return not wanted - listed

    wait_for(
        f"the History Server to list {dict(wanted)} as completed",
        all_listed,
        timeout,
        interval=0.5,
        state=lambda: f"it lists {dict(listed)}",
    )
    if ended_at is not None:
        seconds = time.monotonic() - ended_at
        report.add("History Server: the last job listed, after it ended", f"{seconds:.1f} s")
    report.ok(f"the History Server lists {', '.join(jobs)} as completed ({sum(listed.values())} in all)")
