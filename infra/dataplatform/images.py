"""Image references: their parts, and where the prod tier pulls each from.

A reference is ``[host[:port]/]repository[:tag][@sha256:digest]``. Its first
path component is a registry host when it holds a ``.`` or a ``:`` or is
``localhost`` (Docker's rule); otherwise the reference names no registry
(``redis:7.4.5-bookworm``, ``prom/prometheus:v3.5.0``), and on Kubernetes it
is a repository under ``imageRegistry``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPOSITORY_RE = re.compile(r"^[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$")


class ImageReferenceError(ValueError):
    """Text that is not an image reference."""


def is_registry_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True)
class Reference:
    """An image reference, split. ``host`` is None when it names no registry."""

    host: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        rest, _, digest = text.strip().partition("@")
        if digest and not DIGEST_RE.match(digest):
            raise ImageReferenceError(f"{text}: the digest must be sha256: and 64 hex digits")
        first, slash, remainder = rest.partition("/")
        host = first if slash and is_registry_host(first) else None
        path = remainder if host else rest
        tag = None
        name, colon, maybe_tag = path.rpartition(":")
        if colon and "/" not in maybe_tag:
            path, tag = name, maybe_tag
            if not _TAG_RE.match(tag):
                raise ImageReferenceError(f"{text}: {tag!r} is not a tag")
        if not _REPOSITORY_RE.match(path):
            raise ImageReferenceError(f"{text}: {path!r} is not a repository name")
        return cls(host, path, tag, digest or None)

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}" if self.host else self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def under(self, registry: str) -> Reference:
        """This reference pulled from ``registry`` (``host[:port][/prefix]``)
        when it names no registry itself; unchanged when it does."""
        if self.host is not None:
            return self
        host, _, prefix = registry.strip().rstrip("/").partition("/")
        return replace(
            self, host=host, repository=f"{prefix}/{self.repository}" if prefix else self.repository
        )

    def pinned(self, digest: str) -> Reference:
        return replace(self, digest=digest)


def placed(reference: str, registry: str | None) -> str:
    """Where the prod tier pulls ``reference`` from: as written when it names
    a registry, else under ``registry``."""
    ref = Reference.parse(reference)
    return str(ref.under(registry)) if registry and ref.host is None else reference


def names_a_registry(reference: str) -> bool:
    return Reference.parse(reference).host is not None
