"""UTC timestamps and registry version strings."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

VERSION_FORMAT = "%Y%m%dT%H%M%SZ"


def parse_utc(text: str) -> datetime:
    """ISO-8601 to an aware UTC datetime; a value without an offset is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def version_now() -> str:
    """A version that sorts lexically in time order (registry contract)."""
    return datetime.now(UTC).strftime(VERSION_FORMAT)


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
