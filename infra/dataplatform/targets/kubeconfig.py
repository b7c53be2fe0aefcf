"""The kubeconfig a provider the platform makes would use, read at program
time: the context it records for the jobs CLI, and a check that the cluster
it names answers before anything is declared.

Only for the provider the platform makes itself; a provider the caller
passes is the caller's business.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from dataplatform.config import KubernetesSettings, SettingsError

KEY = "dataplatform:kubernetes.kubeconfigContext"
CONNECT_TIMEOUT_S = 3.0


@dataclass
class Kubeconfig:
    """The merged contents of the files ``KUBECONFIG`` names (or ~/.kube/config)."""

    paths: list[str]
    current: str | None = None
    contexts: dict[str, str] = field(default_factory=dict)  # context -> cluster
    servers: dict[str, str] = field(default_factory=dict)  # cluster -> server URL

    @classmethod
    def load(cls) -> Kubeconfig:
        paths = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config")).split(os.pathsep)
        found = cls([p for p in paths if p])
        # Like kubectl: the first file to set a value wins.
        for path in found.paths:
            try:
                data: dict[str, Any] = yaml.safe_load(Path(path).read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            found.current = found.current or data.get("current-context") or None
            for item in data.get("contexts") or []:
                cluster = (item.get("context") or {}).get("cluster")
                found.contexts.setdefault(str(item.get("name")), str(cluster))
            for item in data.get("clusters") or []:
                server = (item.get("cluster") or {}).get("server")
                found.servers.setdefault(str(item.get("name")), str(server))
        return found

    @property
    def empty(self) -> bool:
        return not self.contexts


def current_context() -> str | None:
    """The context kubectl would use now."""
    return Kubeconfig.load().current


def check_cluster(cluster: KubernetesSettings) -> None:
    """The context the platform's provider will use exists and its API server
    accepts a connection; otherwise one error naming the key. Skipped when
    rendering to a directory or when there is no kubeconfig at all (the
    provider then reports that itself)."""
    if cluster.render_dir:
        return
    config = Kubeconfig.load()
    if config.empty:
        return
    name = cluster.kubeconfig_context or config.current
    if name is None or name not in config.contexts:
        known = ", ".join(sorted(config.contexts))
        shown = "no context is set" if name is None else f"no context {name!r}"
        raise SettingsError(f"{KEY}: {shown} in {os.pathsep.join(config.paths)}; its contexts: {known}")
    server = config.servers.get(config.contexts[name], "")
    url = urlparse(server)
    if not url.hostname:
        cluster_name = config.contexts[name]
        raise SettingsError(f"{KEY}: context {name!r} names cluster {cluster_name!r}, which has no server")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise SettingsError(
            f"{KEY}: the API server of context {name!r} ({server}) does not answer: {error}; "
            "start the cluster or choose another context"
        ) from None
