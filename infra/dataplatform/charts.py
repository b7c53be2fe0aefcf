"""Helm charts fetched and checked against a pinned sha256 before anything
is declared, then installed from the checked bytes.

Where a chart comes from, and what its sha256 is taken of:

- a chart repository (``https://...``, with an ``index.yaml``): the chart
  archive (``.tgz``) the index lists for the version, downloaded; the
  archive's sha256;
- an OCI registry (``oci://host/path``, the chart at ``<path>/<name>:<version>``):
  the chart layer of the artifact's manifest, downloaded; the archive's sha256;
- a local archive (a ``.tgz`` file): its sha256;
- a local directory: the sha256 of the listing ``sha256sum`` prints for
  every regular file under it, sorted by path, symlinks followed::

      cd DIR && find -L . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum

  (no packaging step, so the digest does not depend on a Helm version or on
  file times).

A downloaded archive that matches is kept in the cache directory, named by
its digest, and read from there next time without the network.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from dataplatform.registry import MAX_BYTES, RegistryClient, RegistryError

CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
OCI_MANIFEST = ("application/vnd.oci.image.manifest.v1+json",)
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz")

Kind = Literal["repository", "oci", "archive", "directory"]


class ChartError(Exception):
    """A chart that could not be fetched or read."""


class ChartMismatch(Exception):
    """The chart's bytes are not the pinned ones."""

    def __init__(self, source: ChartSource, expected: str, actual: str) -> None:
        super().__init__(f"{source}: expected sha256:{expected}, got sha256:{actual}")
        self.source = source
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class ChartSource:
    """Chart ``name`` at ``version``, from ``path`` (a local directory or
    archive) when given, else from ``repo`` (a chart repository URL or an
    ``oci://`` registry path)."""

    name: str
    version: str
    repo: str = ""
    path: str | None = None

    @property
    def kind(self) -> Kind:
        if self.path:
            return "directory" if os.path.isdir(self.path) else "archive"
        return "oci" if self.repo.startswith("oci://") else "repository"

    def __str__(self) -> str:
        return f"chart {self.name} {self.version} from {self.path or self.repo}"


def is_archive(path: str) -> bool:
    return path.endswith(ARCHIVE_SUFFIXES) and os.path.isfile(path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(directory: str | Path) -> str:
    """The digest of a chart directory (see the module's docstring)."""
    root = Path(directory)
    files: list[str] = []
    for base, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        for name in names:
            path = Path(base) / name
            if path.is_file():
                files.append("./" + path.relative_to(root).as_posix())
    listing = "".join(f"{file_sha256(root / f)}  {f}\n" for f in sorted(files, key=lambda f: f.encode()))
    return hashlib.sha256(listing.encode()).hexdigest()


def local_sha256(path: str) -> str:
    return tree_sha256(path) if os.path.isdir(path) else file_sha256(path)


def archive_chart_yaml(path: str) -> dict[str, object]:
    """Chart.yaml of a chart archive (``<name>/Chart.yaml`` inside it)."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive.getmembers():
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return dict(yaml.safe_load(handle.read()) or {})
    except (OSError, tarfile.TarError, yaml.YAMLError) as error:
        raise ChartError(f"{path}: not a chart archive ({error})") from None
    raise ChartError(f"{path}: not a chart archive (no <name>/Chart.yaml inside)")


def _http_get(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body: bytes = reply.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise ChartError(f"{url}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ChartError(
            f"cannot reach {urllib.parse.urlsplit(url).netloc}: {getattr(error, 'reason', error)}"
        ) from None
    if len(body) > MAX_BYTES:
        raise ChartError(f"{url}: larger than {MAX_BYTES} bytes")
    return body


class ChartFetcher:
    """Gets a chart's bytes and checks them against the pinned digest.
    ``verified`` returns the local path to install from."""

    def __init__(self, cache: Path, client: RegistryClient | None = None, timeout: float = 30.0) -> None:
        self.cache = cache
        self.client = client or RegistryClient(timeout=timeout)
        self.timeout = timeout

    def verified(self, source: ChartSource, expected: str) -> str:
        """The path of ``source``'s chart, once its sha256 is ``expected``;
        raises ``ChartMismatch`` when it is not, ``ChartError`` when it
        cannot be had."""
        if source.path:
            if not os.path.exists(source.path):
                raise ChartError(f"{source.path}: no such file or directory")
            actual = local_sha256(source.path)
            if actual != expected:
                raise ChartMismatch(source, expected, actual)
            return source.path
        cached = self.cache / f"{source.name}-{source.version}-sha256-{expected}.tgz"
        if cached.is_file() and file_sha256(cached) == expected:
            return str(cached)
        data = self._oci(source) if source.kind == "oci" else self._repository(source)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ChartMismatch(source, expected, actual)
        self.cache.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(prefix=f".{cached.name}.", dir=self.cache)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(staged, cached)
        return str(cached)

    def _repository(self, source: ChartSource) -> bytes:
        base = source.repo.rstrip("/") + "/"
        try:
            index = yaml.safe_load(_http_get(base + "index.yaml", self.timeout)) or {}
        except yaml.YAMLError:
            raise ChartError(f"{base}index.yaml is not YAML") from None
        entries = (index.get("entries") or {}).get(source.name) or []
        entry = next((e for e in entries if str(e.get("version")) == source.version), None)
        if entry is None or not entry.get("urls"):
            raise ChartError(f"{base}index.yaml lists no {source.name} {source.version}")
        return _http_get(urllib.parse.urljoin(base, str(entry["urls"][0])), self.timeout)

    def _oci(self, source: ChartSource) -> bytes:
        host, _, prefix = source.repo.removeprefix("oci://").rstrip("/").partition("/")
        repository = f"{prefix}/{source.name}" if prefix else source.name
        # OCI tags cannot hold "+", which Helm writes as "_".
        tag = source.version.replace("+", "_")
        try:
            manifest = self.client.manifest(host, repository, tag, OCI_MANIFEST)
            found = manifest.get("layers")
            layers = [layer for layer in found if isinstance(layer, dict)] if isinstance(found, list) else []
            chart = next((layer for layer in layers if layer.get("mediaType") == CHART_LAYER), None)
            if chart is None:
                raise ChartError(f"oci://{host}/{repository}:{tag} holds no Helm chart layer")
            return self.client.blob(host, repository, str(chart["digest"]))
        except RegistryError as error:
            raise ChartError(str(error)) from None
