"""The Spark History Server's REST API: which finished applications it lists."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from tools.e2e_common.report import Report, wait_for


def completed(base_url: str) -> list[dict[str, Any]]:
    """``/api/v1/applications?status=completed``: applications whose every
    attempt has ended."""
    url = f"{base_url.rstrip('/')}/api/v1/applications?status=completed"
    with urllib.request.urlopen(url, timeout=10) as response:
        apps: list[dict[str, Any]] = json.load(response)
    return [a for a in apps if a.get("attempts") and all(t.get("completed") for t in a["attempts"])]


def check_listed(base_url: str, names: Sequence[str], report: Report, ended_at: float | None = None) -> None:
    """Every name in ``names`` is part of a completed application's name,
    within a minute. With ``ended_at`` (the last job's end, in
    ``time.monotonic()``), reports how long after it they were all listed."""

    def missing() -> list[str]:
        listed = [str(a.get("name", "")) for a in completed(base_url)]
        return [n for n in names if not any(n in name for name in listed)]

    wait_for(
        f"the History Server to list {list(names)} as completed",
        lambda: not missing(),
        timeout=60,
        interval=0.5,
    )
    if ended_at is not None:
        seconds = time.monotonic() - ended_at
        report.add("History Server: the last job listed, after it ended", f"{seconds:.1f} s")
    total = len(completed(base_url))
    report.ok(f"the History Server lists {', '.join(names)} as completed ({total} completed applications)")
