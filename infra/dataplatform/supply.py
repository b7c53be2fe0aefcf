"""Where the prod tier's artifacts come from at deploy time: image digests
from the registries, charts fetched and checked.

``RegistrySupply`` asks the registries themselves (``registry``, ``charts``).
A program or a test that must not reach the network installs its own
``Supply`` with ``using``; everything the platform pins goes through
``current_supply()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from dataplatform.charts import ChartFetcher, ChartSource
from dataplatform.registry import RegistryClient


class Supply(Protocol):
    def image_digest(self, reference: str) -> str:
        """The digest (``sha256:...``) the reference's tag points at now;
        raises ``RegistryError`` saying why it cannot be had."""
        ...

    def verified_chart(self, source: ChartSource, expected: str) -> str:
        """The local path (directory or archive) of ``source``'s chart, once
        its sha256 is ``expected``; raises ``ChartMismatch`` or ``ChartError``."""
        ...


def cache_dir() -> Path:
    """``$DATAPLATFORM_CACHE``, or ``~/.cache/dataplatform``."""
    return Path(os.environ.get("DATAPLATFORM_CACHE") or Path.home() / ".cache" / "dataplatform")


class RegistrySupply:
    """Digests from the registries (HTTP HEAD of the tag's manifest), charts
    from their repository or OCI registry, checked and cached under
    ``<cache>/charts``."""

    def __init__(self, client: RegistryClient | None = None, charts_cache: Path | None = None) -> None:
        self.client = client or RegistryClient()
        self.charts = ChartFetcher(charts_cache or cache_dir() / "charts", self.client)

    def image_digest(self, reference: str) -> str:
        return self.client.manifest_digest(reference)

    def verified_chart(self, source: ChartSource, expected: str) -> str:
        return self.charts.verified(source, expected)


_installed: Supply | None = None


def current_supply() -> Supply:
    return _installed if _installed is not None else RegistrySupply()


@contextlib.contextmanager
def using(supply: Supply) -> Iterator[Supply]:
    """``supply`` answers for everything pinned inside the block."""
    global _installed
    previous, _installed = _installed, supply
    try:
        yield supply
    finally:
        _installed = previous
