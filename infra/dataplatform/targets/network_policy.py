"""The prod tier's network policy: deny all traffic, then open exactly the declared flows.

Workloads declare their flows with ``talks_to`` (and ``exposure`` for
traffic from outside); pods the target did not create (Spark's) declare
theirs as ``PodFlows``. A caller gets only the ports it names (``name:port``)
or, naming only the workload, all of them. Every pod may resolve names,
at the cluster's DNS pods only; only pods that use the cluster's API may
reach the API server, at its own addresses and ports only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform.config import KubernetesSettings
from dataplatform.targets.base import PodFlows
from dataplatform.targets.namespace import PlatformNamespace, namespace_selector, workload_labels
from dataplatform.workload import PodScrape, Port, Workload, flow_target
from jobs.conventions import NAME_LABEL, PART_OF

DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
API_SERVER_PORTS = [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
# Selects every pod of its namespace and allows nothing: what other policies open, they add.
DEFAULT_DENY = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def _pods(selector: dict[str, str]) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": selector}}


def _tcp(ports: Iterable[Port]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p.container_port} for p in ports]


def _endpoint_rule(endpoints: Mapping[str, Any]) -> dict[str, Any]:
    """The API server's EndpointSlice as an egress rule: each address as a
    single-host block, and its ports. An empty ``to`` would admit every
    address, so a slice without addresses is an error, not a rule."""
    addresses = [a for e in endpoints.get("endpoints") or [] for a in e.get("addresses") or []]
    if not addresses:
        raise pulumi.RunError(
            "the cluster's default/kubernetes EndpointSlice lists no address: set "
            "dataplatform:kubernetes.apiServerCidrs to the API server's addresses"
        )
    blocks = [f"{a}/128" if ":" in a else f"{a}/32" for a in addresses]
    ports = [
        {"protocol": p.get("protocol") or "TCP", "port": p["port"]}
        for p in endpoints.get("ports") or []
        if p.get("port")
    ]
    return {"to": [{"ipBlock": {"cidr": b}} for b in blocks], "ports": ports or API_SERVER_PORTS}


class NetworkPolicies:
    """A default-deny policy for the platform's namespace and the jobs
    namespace, declared at once; one policy per workload (in the first) and
    per pod group (in the second), declared by ``finalize`` once every flow
    is known (a workload's ingress depends on who talks to it)."""

    def __init__(
        self,
        namespace: PlatformNamespace,
        jobs: PlatformNamespace,
        cluster: KubernetesSettings,
        parent: pulumi.Resource,
    ) -> None:
        self._namespace = namespace
        self._jobs = jobs
        self._dns = {
            "to": [{**namespace_selector(cluster.dns.namespace), **_pods(dict(cluster.dns.pod_labels))}],
            "ports": DNS_PORTS,
        }
        self._api_server: pulumi.Input[dict[str, Any]]
        if cluster.api_server_cidrs:
            self._api_server = {
                "to": [{"ipBlock": {"cidr": c}} for c in cluster.api_server_cidrs],
                "ports": API_SERVER_PORTS,
            }
        else:
            # Read at deploy (preview included): the addresses and port the
            # API server publishes for its own Service.
            endpoints = k8s.discovery.v1.EndpointSlice.get(
                namespace.names.of("api-server-endpoints"),
                "default/kubernetes",
                opts=pulumi.ResourceOptions(parent=parent, provider=namespace.provider),
            )
            self._api_server = pulumi.Output.all(endpoints=endpoints.endpoints, ports=endpoints.ports).apply(
                _endpoint_rule
            )
        self._pod_groups: dict[str, tuple[PodFlows, pulumi.Resource]] = {}
        # Namespaces of installed charts, by name: what objects declared in
        # them wait for.
        self._chart_namespaces: dict[str, list[pulumi.Resource]] = {}
        self._workloads: Mapping[str, Workload] = {}
        for ns, key in ((namespace, "default-deny"), (jobs, "jobs-default-deny")):
            k8s.networking.v1.NetworkPolicy(
                ns.names.of(key),
                metadata=ns.meta("default-deny"),
                spec=DEFAULT_DENY,
                opts=ns.opts(parent),
            )

    def close_chart_namespace(
        self,
        chart: str,
        name: str,
        namespace: pulumi.Input[str],
        ingress_ports: Sequence[int],
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource],
    ) -> None:
        """A chart's namespace, closed the same way: every pod may resolve
        names and call the API server (operators and webhooks work through
        it), and takes connections on ``ingress_ports`` only, from any
        address (the API server calling a webhook is no pod to select).
        ``name`` is the namespace's, ``namespace`` the same as the output
        of its declaration, and ``depends_on`` what declares it."""
        ports = [{"protocol": "TCP", "port": port} for port in ingress_ports]
        self._chart_namespaces[name] = list(depends_on)
        opts = self.opts_in(name, parent)
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
                "egress": [self._dns, self._api_server],
            },
            opts=opts,
        )

    def opts_in(self, namespace: str, parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
        """Options for an object declared in ``namespace``: the platform's
        provider, and after the namespace where the platform declares it."""
        for ns in (self._namespace, self._jobs):
            if namespace == ns.name:
                return ns.opts(parent, **extra)
        depends = [*extra.pop("depends_on", []), *self._chart_namespaces.get(namespace, [])]
        return pulumi.ResourceOptions(
            parent=parent, provider=self._namespace.provider, depends_on=depends, **extra
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
        for name, workload in workloads.items():
            for scrape in workload.scrapes_pods:
                self._scrape_policy(workload, scrape, parents[name])

    def _workload_policy(self, workload: Workload, parent: pulumi.Resource) -> None:
        """Ingress on each port from the workloads and pod groups that name
        it (and from the exposure's sources for a public one); egress to
        DNS, to the ports this one talks to, and to the API server for one
        with a service account."""
        ingress: list[dict[str, Any]] = []
        if workload.exposure and workload.ports:
            sources = workload.exposure.from_namespaces
            if sources is None:
                ingress.append({"ports": _tcp(workload.ports)})
            elif sources:
                ingress.append(
                    {"from": [namespace_selector(ns) for ns in sources], "ports": _tcp(workload.ports)}
                )
        # Callers grouped by the ports they may use, one rule per group.
        by_callers: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Port]] = {}
        for port in workload.ports:
            names = (workload.name, f"{workload.name}:{port.name}")
            callers = tuple(sorted(w.name for w in self._workloads.values() if set(names) & set(w.talks_to)))
            groups = tuple(
                sorted(
                    group
                    for group, (flows, _) in self._pod_groups.items()
                    if set(names) & set(flows.to_workloads)
                )
            )
            if callers or groups:
                by_callers.setdefault((callers, groups), []).append(port)
        for (callers, groups), ports in by_callers.items():
            # Pod groups run in the jobs namespace.
            sources_: list[dict[str, Any]] = [
                {**namespace_selector(self._jobs.name), **_pods(self._pod_groups[g][0].selector)}
                for g in groups
            ]
            if callers:
                selector = {
                    "matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": list(callers)}]
                }
                sources_.append({"podSelector": selector})
            ingress.append({"from": sources_, "ports": _tcp(ports)})
        egress = self._egress(workload.talks_to, to_api_server=bool(workload.service_account))
        egress += [
            {
                "to": [{**namespace_selector(s.namespace), **_pods(s.selector)}],
                "ports": [{"protocol": "TCP", "port": s.port}],
            }
            for s in workload.scrapes_pods
        ]
        self._declare(
            workload.name,
            workload_labels(workload.name),
            {NAME_LABEL: workload.name},
            ingress,
            egress,
            parent,
        )

    def _scrape_policy(self, workload: Workload, scrape: PodScrape, parent: pulumi.Resource) -> None:
        """In the scraped pods' namespace: ingress on the scraped port from
        the workload's pods, beside whatever else admits traffic there."""
        name = f"{workload.name}-scrapes-{scrape.job}"
        scraper = {**namespace_selector(self._namespace.name), **_pods({NAME_LABEL: workload.name})}
        k8s.networking.v1.NetworkPolicy(
            self._namespace.names.of(f"{name}-{scrape.namespace}"),
            metadata={"name": name, "namespace": scrape.namespace, "labels": dict(PART_OF)},
            spec={
                "podSelector": {"matchLabels": dict(scrape.selector)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [scraper],
                        "ports": [{"protocol": "TCP", "port": scrape.port}],
                    }
                ],
            },
            opts=self.opts_in(scrape.namespace, parent),
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
            self._egress(flows.to_workloads, flows.to_api_server, peers, across=True),
            parent,
            namespace=self._jobs,
        )

    def _egress(
        self,
        to_workloads: Iterable[str],
        to_api_server: bool,
        peers: list[dict[str, Any]] | None = None,
        across: bool = False,
    ) -> list[pulumi.Input[dict[str, Any]]]:
        """DNS always, then ``peers``, the ports named in ``to_workloads``
        (in the platform's namespace, from another one when ``across``), and
        the API server when asked for."""
        rules: list[pulumi.Input[dict[str, Any]]] = [self._dns]
        if peers:
            rules.append({"to": peers})
        where = namespace_selector(self._namespace.name) if across else {}
        for entry in to_workloads:
            target, _ = flow_target(entry)
            rules.append(
                {"to": [{**where, **_pods({NAME_LABEL: target})}], "ports": _tcp(self._ports_of(entry))}
            )
        if to_api_server:
            rules.append(self._api_server)
        return rules

    def _ports_of(self, entry: str) -> list[Port]:
        name, port = flow_target(entry)
        workload = self._workloads.get(name)
        if workload is None:
            raise KeyError(f"a network flow names {name!r}, which is not a declared workload")
        if port is None:
            return list(workload.ports)
        found = workload.port_named(port)
        if found is None:
            raise KeyError(f"a network flow names {entry!r}, but {name} has no port {port!r}")
        return [found]

    def _declare(
        self,
        name: str,
        labels: dict[str, str] | None,
        selector: dict[str, str],
        ingress: list[dict[str, Any]],
        egress: list[pulumi.Input[dict[str, Any]]],
        parent: pulumi.Resource,
        namespace: PlatformNamespace | None = None,
    ) -> None:
        ns = namespace or self._namespace
        k8s.networking.v1.NetworkPolicy(
            ns.names.of(name),
            metadata=ns.meta(name, labels),
            spec={
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": egress,
            },
            opts=ns.opts(parent),
        )
