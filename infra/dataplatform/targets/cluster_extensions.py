"""The prod tier's cluster API beyond workloads: what a ``ClusterTarget`` offers the services.

Helm charts, custom resources, service accounts bound to their roles, and
Secrets and network access for pods the target did not create (the Spark
Operator's drivers and executors).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform.targets.base import ChartSpec, Manifest, PodFlows, RoleRules
from dataplatform.targets.namespace import PSA_RESTRICTED, PlatformNamespace
from dataplatform.targets.network_policy import NetworkPolicies
from dataplatform.workload import File
from jobs.conventions import PART_OF


class ClusterExtensions:
    """The ``ClusterTarget`` methods, declaring into ``namespace``; flows go to ``policies``."""

    def __init__(self, namespace: PlatformNamespace, policies: NetworkPolicies) -> None:
        self._namespace = namespace
        self._policies = policies

    def install_chart(self, spec: ChartSpec, parent: pulumi.Resource) -> pulumi.Resource:
        # A namespace of its own: nothing here is declared in the platform's
        # namespace, so nothing waits for it.
        provider = self._namespace.provider
        namespace = k8s.core.v1.Namespace(
            self._namespace.names.of(f"{spec.name}-namespace"),
            metadata={"name": spec.namespace, "labels": {**PART_OF, **PSA_RESTRICTED}},
            opts=pulumi.ResourceOptions(parent=parent, provider=provider),
        )
        self._policies.close_chart_namespace(
            spec.name, namespace.metadata.name, spec.ingress_ports, parent, [namespace]
        )
        source: dict[str, Any]
        if spec.path:
            source = {"chart": spec.path}
        elif spec.repo.startswith("oci://"):
            source = {"chart": f"{spec.repo.rstrip('/')}/{spec.chart}", "version": spec.version}
        else:
            source = {
                "chart": spec.chart,
                "version": spec.version,
                "repository_opts": k8s.helm.v4.RepositoryOptsArgs(repo=spec.repo),
            }
        return k8s.helm.v4.Chart(
            self._namespace.names.of(spec.name),
            **source,
            name=self._namespace.names.release(spec.name),
            namespace=spec.namespace,
            values=spec.values,
            opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=[namespace]),
        )

    def service_account(
        self, name: str, rules: RoleRules, parent: pulumi.Resource, mount_token: bool = False
    ) -> pulumi.Resource:
        ns = self._namespace
        account = k8s.core.v1.ServiceAccount(
            ns.names.of(name),
            metadata=ns.meta(name),
            automount_service_account_token=mount_token,
            opts=ns.opts(parent),
        )
        role = k8s.rbac.v1.Role(ns.names.of(name), metadata=ns.meta(name), rules=rules, opts=ns.opts(parent))
        k8s.rbac.v1.RoleBinding(
            ns.names.of(name),
            metadata=ns.meta(name),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": ns.name}],
            opts=ns.opts(parent, depends_on=[role, account]),
        )
        return account

    def custom_resource(
        self, name: str, manifest: Manifest, parent: pulumi.Resource, depends_on: list[pulumi.Resource]
    ) -> pulumi.Resource:
        body = dict(manifest)
        api_version = str(body.pop("apiVersion"))
        kind = str(body.pop("kind"))
        metadata = dict(body.pop("metadata", {}) or {})  # type: ignore[call-overload]
        metadata.setdefault("name", name)
        # Always the platform's namespace, whatever the manifest says.
        metadata["namespace"] = self._namespace.name
        return k8s.apiextensions.CustomResource(
            self._namespace.names.of(name),
            api_version=api_version,
            kind=kind,
            metadata=metadata,
            spec=body.get("spec"),
            opts=self._namespace.opts(parent, depends_on=depends_on),
        )

    def secret_volume(
        self, name: str, files: tuple[File, ...], parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        secret = k8s.core.v1.Secret(
            self._namespace.names.of(name),
            metadata=self._namespace.meta(name),
            type="Opaque",
            string_data={f.filename: f.content for f in files},
            opts=self._namespace.opts(parent),
        )
        return secret.metadata.name

    def allow_flows(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        self._policies.allow_pods(name, flows, parent)
