"""The prod tier's namespace: its provider, and what every object declared in it shares.

The Kubernetes target, its network policies and its cluster extensions all
declare their objects through one ``PlatformNamespace``, so every object
goes through the same provider, carries the project's labels and waits for
the namespace to exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform.config import KubernetesSettings
from dataplatform.naming import Names
from dataplatform.targets.kubeconfig import check_cluster
from jobs.conventions import NAME_LABEL, PART_OF

# The kubernetes provider creates an object so annotated without waiting
# for it to be ready.
SKIP_AWAIT = "pulumi.com/skipAwait"
# The "restricted" Pod Security profile, enforced on every namespace the
# stack creates (the platform's and each chart's).
PSA_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def namespace_selector(name: str) -> dict[str, Any]:
    """Selects the namespace ``name`` by the label Kubernetes gives every namespace."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def workload_labels(name: str) -> dict[str, str]:
    """The labels of a workload's objects and pods; its pods are selected by ``NAME_LABEL``."""
    return {NAME_LABEL: name, **PART_OF}


@dataclass(frozen=True)
class NamespaceOptions:
    """Where the platform's objects go: ``own_provider`` makes a provider
    from ``cluster`` (otherwise the one the caller passed to the platform is
    inherited); ``create`` declares the namespace (otherwise it must exist,
    and is read first when ``check_exists``)."""

    cluster: KubernetesSettings
    purge_on_destroy: bool
    create: bool = True
    own_provider: bool = True
    # A namespace not created must exist: read it first, unless the program
    # makes it in the same update (the platform then waits on it, and a read
    # in preview would not find it yet).
    check_exists: bool = True


class PlatformNamespace:
    """The provider for the platform's cluster and the namespace it deploys
    into, created under ``parent`` when the options say so.

    A created namespace is kept on ``pulumi destroy`` unless
    ``purge_on_destroy``: deleting it would take the PVCs retained in it along.
    """

    def __init__(
        self,
        options: NamespaceOptions,
        names: Names,
        parent: pulumi.Resource,
        name: str | None = None,
        key: str = "namespace",
        provider_of: PlatformNamespace | None = None,
        holds_data: bool = True,
    ) -> None:
        """``name`` (``kubernetes.namespace`` by default) under the resource
        name ``key``; ``provider_of`` lends its provider (another namespace
        of the same platform) instead of making one. One that
        ``holds_data`` (PVCs) is kept on destroy unless purged."""
        cluster = options.cluster
        self.name = name or cluster.namespace
        self.names = names
        self.provider: k8s.Provider | None = None
        if provider_of is not None:
            self.provider = provider_of.provider
        elif options.own_provider:
            check_cluster(cluster)
            self.provider = k8s.Provider(
                names.of("kubernetes"),
                render_yaml_to_directory=cluster.render_dir,
                context=cluster.kubeconfig_context,
                enable_server_side_apply=True,
                # A changed file updates its ConfigMap or Secret in place, and
                # the digest on the pod template rolls the pods. By default
                # the provider replaces the object, and, its name being
                # fixed, the Deployment mounting it with it: deleted, then
                # made again.
                enable_config_map_mutable=True,
                enable_secret_mutable=True,
                opts=pulumi.ResourceOptions(parent=parent),
            )
        self.resource: k8s.core.v1.Namespace | None = None
        if not options.create and options.check_exists:
            # Read, not declared: a namespace that does not exist fails the
            # preview here, and every object of the platform waits for it.
            self.resource = k8s.core.v1.Namespace.get(
                names.of(key),
                self.name,
                opts=pulumi.ResourceOptions(parent=parent, provider=self.provider),
            )
        elif options.create:
            self.resource = k8s.core.v1.Namespace(
                names.of(key),
                metadata={"name": self.name, "labels": {**PART_OF, **PSA_RESTRICTED}},
                # The namespace itself depends on nothing; see ``opts`` for the rest.
                opts=pulumi.ResourceOptions(
                    parent=parent,
                    provider=self.provider,
                    depends_on=[],
                    retain_on_delete=holds_data and not options.purge_on_destroy,
                ),
            )

    def opts(self, parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
        """Options for an object in the namespace: the platform's provider, and
        after the namespace (besides any ``depends_on`` in ``extra``)."""
        depends = [*extra.pop("depends_on", []), *([self.resource] if self.resource else [])]
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, depends_on=depends, **extra)

    def meta(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Metadata for an object in the namespace, labelled ``PART_OF`` unless ``labels`` are given."""
        return {"name": name, "namespace": self.name, "labels": labels or dict(PART_OF)}
