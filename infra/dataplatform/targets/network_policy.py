"""The prod tier's network policy: deny all traffic, then open exactly the declared flows.

Workloads declare their flows with ``talks_to`` (and ``exposure`` for
traffic from outside); pods the target did not create (Spark's) declare
theirs as ``PodFlows``. Every pod may resolve names (DNS); only pods that
use the cluster's API may reach the API server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform.targets.base import PodFlows
from dataplatform.targets.namespace import PlatformNamespace, workload_labels
from dataplatform.workload import Workload
from jobs.conventions import NAME_LABEL

DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
API_SERVER_PORTS = [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
# Selects every pod of its namespace and allows nothing: what other policies open, they add.
DEFAULT_DENY = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def _pods(selector: dict[str, str]) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": selector}}


def _tcp_ports(workload: Workload) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p.container_port} for p in workload.ports]


class NetworkPolicies:
    """A default-deny policy for the namespace, declared at once, and one
    policy per workload and per pod group, declared by ``finalize`` once
    every flow is known (a workload's ingress depends on who talks to it)."""

    def __init__(
        self, namespace: PlatformNamespace, api_server_cidrs: Sequence[str], parent: pulumi.Resource
    ) -> None:
        self._namespace = namespace
        self._api_server_cidrs = api_server_cidrs
        self._pod_groups: dict[str, tuple[PodFlows, pulumi.Resource]] = {}
        self._workloads: Mapping[str, Workload] = {}
        k8s.networking.v1.NetworkPolicy(
            namespace.names.of("default-deny"),
            metadata=namespace.meta("default-deny"),
            spec=DEFAULT_DENY,
            opts=namespace.opts(parent),
        )

    def close_chart_namespace(
        self,
        chart: str,
        namespace: pulumi.Input[str],
        ingress_ports: Sequence[int],
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource],
    ) -> None:
        """A chart's namespace, closed the same way: every pod may resolve
        names and call the API server (operators and webhooks work through
        it), and takes connections on ``ingress_ports`` only, from any
        address (the API server calling a webhook is no pod to select)."""
        ports = [{"protocol": "TCP", "port": port} for port in ingress_ports]
        opts = pulumi.ResourceOptions(
            parent=parent, provider=self._namespace.provider, depends_on=list(depends_on)
        )
        k8s.networking.v1.NetworkPolicy(
            self._namespace.names.of(f"{chart}-default-deny"),
            metadata={"name": "default-deny", "namespace": namespace},
            spec=DEFAULT_DENY,
            opts=opts,
        )
        k8s.networking.v1.NetworkPolicy(
            self._namespace.names.of(f"{chart}-pods"),
            metadata={"name": chart, "namespace": namespace},
            spec={
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": ports}] if ports else [],
                "egress": [{"ports": DNS_PORTS}, self._api_server_egress()],
            },
            opts=opts,
        )

    def allow_pods(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        """Opens ``flows`` for the pods they select, in the policy ``name``."""
        self._pod_groups[name] = (flows, parent)

    def finalize(self, workloads: Mapping[str, Workload], parents: Mapping[str, pulumi.Resource]) -> None:
        """Declares a policy for each of ``workloads`` (under its parent in
        ``parents``), then one for each pod group."""
        self._workloads = workloads
        for name, workload in workloads.items():
            self._workload_policy(workload, parents[name])
        for name, (flows, parent) in self._pod_groups.items():
            self._pod_group_policy(name, flows, parent)

    def _workload_policy(self, workload: Workload, parent: pulumi.Resource) -> None:
        """Ingress from the workloads and pod groups that declare they talk to
        this one (and from anywhere for a public one); egress to DNS, to the
        workloads this one talks to, and to the API server for one with a
        service account."""
        ports = _tcp_ports(workload)
        ingress: list[dict[str, Any]] = []
        if workload.ports:
            if workload.public:
                ingress.append({"ports": ports})
            callers = sorted({w.name for w in self._workloads.values() if workload.name in w.talks_to})
            pod_callers = [
                _pods(flows.selector)
                for flows, _ in self._pod_groups.values()
                if workload.name in flows.to_workloads
            ]
            if pod_callers:
                ingress.append({"from": pod_callers, "ports": ports})
            if callers:
                selector = {"matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": callers}]}
                ingress.append({"from": [{"podSelector": selector}], "ports": ports})
        self._declare(
            workload.name,
            workload_labels(workload.name),
            {NAME_LABEL: workload.name},
            ingress,
            self._egress(workload.talks_to, to_api_server=bool(workload.service_account)),
            parent,
        )

    def _pod_group_policy(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        """Ingress only from the group's own pods, if they talk among
        themselves; egress to DNS, to them, to the named workloads and to the
        API server as ``flows`` declares."""
        peers = [_pods(flows.selector)] if flows.among_themselves else []
        self._declare(
            name,
            None,
            flows.selector,
            [{"from": peers}] if peers else [],
            self._egress(flows.to_workloads, flows.to_api_server, peers),
            parent,
        )

    def _egress(
        self, to_workloads: Iterable[str], to_api_server: bool, peers: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """DNS always, then ``peers``, the ports of each of ``to_workloads``,
        and the API server when asked for."""
        rules: list[dict[str, Any]] = [{"ports": DNS_PORTS}]
        if peers:
            rules.append({"to": peers})
        for target in to_workloads:
            rules.append({"to": [_pods({NAME_LABEL: target})], "ports": self._ports_of(target)})
        if to_api_server:
            rules.append(self._api_server_egress())
        return rules

    def _api_server_egress(self) -> dict[str, Any]:
        """To the API server: its addresses when the stack names them
        (``kubernetes.apiServerCidrs``), else any address on its ports."""
        rule: dict[str, Any] = {"ports": API_SERVER_PORTS}
        if self._api_server_cidrs:
            rule["to"] = [{"ipBlock": {"cidr": c}} for c in self._api_server_cidrs]
        return rule

    def _ports_of(self, name: str) -> list[dict[str, Any]]:
        workload = self._workloads.get(name)
        if workload is None:
            raise KeyError(f"a network flow names {name!r}, which is not a declared workload")
        return _tcp_ports(workload)

    def _declare(
        self,
        name: str,
        labels: dict[str, str] | None,
        selector: dict[str, str],
        ingress: list[dict[str, Any]],
        egress: list[dict[str, Any]],
        parent: pulumi.Resource,
    ) -> None:
        k8s.networking.v1.NetworkPolicy(
            self._namespace.names.of(name),
            metadata=self._namespace.meta(name, labels),
            spec={
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": egress,
            },
            opts=self._namespace.opts(parent),
        )
