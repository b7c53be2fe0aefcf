"""The prod tier's namespace: its provider, and what every object declared in it shares.

The Kubernetes target, its network policies and its cluster extensions all
declare their objects through one ``PlatformNamespace``, so every object
goes through the same provider, carries the project's labels and waits for
the namespace to exist.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform.config import KubernetesSettings
from jobs.conventions import NAME_LABEL, PART_OF

# The "restricted" Pod Security profile, enforced on every namespace the
# stack creates (the platform's and each chart's).
PSA_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def workload_labels(name: str) -> dict[str, str]:
    """The labels of a workload's objects and pods; its pods are selected by ``NAME_LABEL``."""
    return {NAME_LABEL: name, **PART_OF}


class PlatformNamespace:
    """The provider for ``cluster`` and the namespace it names, created under ``parent``.

    The namespace is kept on ``pulumi destroy`` unless ``purge_on_destroy``:
    deleting it would take the PVCs retained in it along.
    """

    def __init__(self, cluster: KubernetesSettings, purge_on_destroy: bool, parent: pulumi.Resource) -> None:
        self.name = cluster.namespace
        self.provider = k8s.Provider(
            "kubernetes",
            render_yaml_to_directory=cluster.render_dir,
            context=cluster.kubeconfig_context,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        self.resource = k8s.core.v1.Namespace(
            "namespace",
            metadata={"name": self.name, "labels": {**PART_OF, **PSA_RESTRICTED}},
            # The namespace itself depends on nothing; see ``opts`` for the rest.
            opts=pulumi.ResourceOptions(
                parent=parent,
                provider=self.provider,
                depends_on=[],
                retain_on_delete=not purge_on_destroy,
            ),
        )

    def opts(self, parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
        """Options for an object in the namespace: this provider, and after the
        namespace (besides any ``depends_on`` in ``extra``)."""
        depends = [*extra.pop("depends_on", []), self.resource]
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, depends_on=depends, **extra)

    def meta(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Metadata for an object in the namespace, labelled ``PART_OF`` unless ``labels`` are given."""
        return {"name": name, "namespace": self.name, "labels": labels or dict(PART_OF)}
