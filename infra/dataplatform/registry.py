"""A small client of the OCI distribution API, the HTTP API every container
registry serves: the digest a tag points at (``HEAD /v2/<repo>/manifests/<tag>``),
manifests and blobs (a Helm chart pushed to an OCI registry is one).

Loopback registries (``localhost``, ``127.0.0.0/8``, ``::1``) are spoken to
over plain HTTP, as the Docker engine does without configuration; every
other registry over HTTPS. A registry that answers 401 gets the token dance
of the Docker registry auth spec (anonymous, or with the credentials of the
Docker config file's ``auths`` entry for that host: ``$DOCKER_CONFIG/config.json``
or ``~/.docker/config.json``; credential helpers are not run).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dataplatform.images import DIGEST_RE, Reference

# What a tag may point at: a multi-platform index or one image's manifest.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
# Nothing this client fetches (manifests, chart archives) comes near this.
MAX_BYTES = 64 * 1024 * 1024

Credentials = Callable[[str], "tuple[str, str] | None"]


class RegistryError(Exception):
    """A registry could not answer; the message says why, for a person."""


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def api_base(host: str) -> str:
    """The registry API's base URL for a reference's host."""
    if host in DOCKER_HUB:
        return "https://registry-1.docker.io"
    return f"{'http' if is_loopback(host) else 'https'}://{host}"


def api_repository(host: str, repository: str) -> str:
    """Docker Hub keeps its official images under ``library/``."""
    return f"library/{repository}" if host in DOCKER_HUB and "/" not in repository else repository


def docker_config_credentials(config_dir: Path | None = None) -> Credentials:
    """Credentials by registry host, read from a Docker config file's ``auths``."""
    directory = config_dir or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")

    def lookup(host: str) -> tuple[str, str] | None:
        try:
            auths = json.loads((directory / "config.json").read_text()).get("auths") or {}
        except (OSError, ValueError):
            return None
        keys = [host, f"https://{host}", f"http://{host}"]
        if host in DOCKER_HUB:
            keys.append("https://index.docker.io/v1/")
        for key in keys:
            entry = auths.get(key) or auths.get(key + "/")
            if not isinstance(entry, Mapping):
                continue
            if entry.get("username") and entry.get("password"):
                return str(entry["username"]), str(entry["password"])
            if entry.get("auth"):
                user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
                return user, password
        return None

    return lookup


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class RegistryClient:
    """Reads from registries over the distribution API (pulls only)."""

    def __init__(self, timeout: float = 15.0, credentials: Credentials | None = None) -> None:
        self.timeout = timeout
        self.credentials = credentials or docker_config_credentials()
        self._tokens: dict[tuple[str, str], str] = {}

    # -- HTTP ---------------------------------------------------------------

    def _send(self, method: str, url: str, headers: Mapping[str, str], auth: str | None) -> Response:
        request = urllib.request.Request(url, method=method, headers=dict(headers))
        if auth:
            # Not forwarded when the registry redirects a blob to its storage.
            request.add_unredirected_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                body = reply.read(MAX_BYTES + 1) if method != "HEAD" else b""
                if len(body) > MAX_BYTES:
                    raise RegistryError(f"{url}: the answer is larger than {MAX_BYTES} bytes")
                return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, body)
        except urllib.error.HTTPError as error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, b"")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None

    def _token(self, challenge: str, host: str, repository: str) -> str | None:
        """The Authorization header a 401's challenge asks for, if it can be met."""
        scheme, _, params = challenge.partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        login = self.credentials(host)
        if scheme.lower() == "basic":
            if login is None:
                return None
            return "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        if scheme.lower() != "bearer" or "realm" not in fields:
            return None
        scope = fields.get("scope") or f"repository:{repository}:pull"
        key = (fields["realm"], scope)
        if key not in self._tokens:
            query = urllib.parse.urlencode(
                {k: v for k, v in (("service", fields.get("service")), ("scope", scope)) if v}
            )
            headers = {}
            if login is not None:
                headers["Authorization"] = (
                    "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
                )
            reply = self._send("GET", f"{fields['realm']}?{query}", headers, None)
            if reply.status != 200:
                return None
            answer = json.loads(reply.body or b"{}")
            token = answer.get("token") or answer.get("access_token")
            if not token:
                return None
            self._tokens[key] = str(token)
        return f"Bearer {self._tokens[key]}"

    def _get(
        self, method: str, host: str, repository: str, path: str, accept: tuple[str, ...] = ()
    ) -> Response:
        repository = api_repository(host, repository)
        url = f"{api_base(host)}/v2/{repository}/{path}"
        headers = {"Accept": ", ".join(accept)} if accept else {}
        reply = self._send(method, url, headers, None)
        if reply.status == 401:
            challenge = reply.headers.get("www-authenticate", "")
            auth = self._token(challenge, host, repository)
            if auth:
                reply = self._send(method, url, headers, auth)
        if reply.status in (401, 403):
            hint = "" if self.credentials(host) else f"; no credentials for {host} in the Docker config file"
            raise RegistryError(f"{host} refused access to {repository} (HTTP {reply.status}){hint}")
        if reply.status == 404:
            kind, _, name = path.partition("/")
            if kind == "blobs":
                raise RegistryError(f"{host}/{repository} has no blob {name} (HTTP 404)")
            at = "@" if name.startswith("sha256:") else ":"
            raise RegistryError(f"{host}/{repository}{at}{name} is not in the registry (HTTP 404)")
        if reply.status >= 300:
            raise RegistryError(f"{url}: HTTP {reply.status}")
        return reply

    # -- the API --------------------------------------------------------------

    def manifest_digest(self, reference: str) -> str:
        """The digest the reference's tag points at now (or its own digest)."""
        ref = Reference.parse(reference)
        if ref.digest:
            return ref.digest
        if ref.host is None:
            raise RegistryError(f"{reference} names no registry")
        path = f"manifests/{ref.tag or 'latest'}"
        reply = self._get("HEAD", ref.host, ref.repository, path, MANIFEST_TYPES)
        digest = reply.headers.get("docker-content-digest")
        if not digest or not DIGEST_RE.match(digest):
            # Registries need not send it on HEAD: the manifest's own hash is its digest.
            body = self._get("GET", ref.host, ref.repository, path, MANIFEST_TYPES).body
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return digest

    def manifest(self, host: str, repository: str, tag: str, accept: tuple[str, ...]) -> dict[str, object]:
        reply = self._get("GET", host, repository, f"manifests/{tag}", accept)
        try:
            manifest = json.loads(reply.body)
        except ValueError:
            raise RegistryError(f"{host}/{repository}:{tag}: the manifest is not JSON") from None
        if not isinstance(manifest, dict):
            raise RegistryError(f"{host}/{repository}:{tag}: the manifest is not an object")
        return manifest

    def blob(self, host: str, repository: str, digest: str) -> bytes:
        """A blob, checked against its digest."""
        body = self._get("GET", host, repository, f"blobs/{digest}").body
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if actual != digest:
            raise RegistryError(f"{host}/{repository}: blob {digest} arrived as {actual}")
        return body
