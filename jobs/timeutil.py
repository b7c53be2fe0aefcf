"""UTC timestamps, registry version strings and table versions to read."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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


@dataclass(frozen=True)
class AsOf:
    """A table version, or the version that was current at a time."""

    version: int | None = None
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        if (self.version is None) == (self.timestamp is None):
            raise ValueError("give exactly one of version and timestamp")

    def options(self) -> dict[str, str]:
        if self.timestamp is None:
            return {"versionAsOf": str(self.version)}
        # Delta reads the string in the session's time zone, which the jobs
        # pin to UTC; an offset-free form avoids a second parser's rules.
        return {"timestampAsOf": self.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")}

    def __str__(self) -> str:
        return f"version {self.version}" if self.timestamp is None else iso_utc(self.timestamp)


def parse_as_of(text: str) -> AsOf:
    """``--as-of`` value: a version number, or an ISO-8601 time (UTC if no offset)."""
    value = text.strip()
    if value.isdigit():
        return AsOf(version=int(value))
    try:
        return AsOf(timestamp=parse_utc(value))
    except (argparse.ArgumentTypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a table version (0, 1, ...) nor an ISO-8601 time"
        ) from None
