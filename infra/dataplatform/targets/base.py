"""What a service may ask of a target, whichever it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pulumi

from dataplatform.naming import Names
from dataplatform.workload import File, ImageRef, Workload

# A Role's rules as Kubernetes writes them: apiGroups, resources, verbs.
RoleRules = list[dict[str, list[str]]]
# A custom resource as Kubernetes writes it: apiVersion, kind, metadata, spec.
Manifest = dict[str, object]


@dataclass
class Deployment:
    """What a target made of a workload, for other components to wire to."""

    workload: Workload
    resources: list[pulumi.Resource] = field(default_factory=list)

    @property
    def host(self) -> str:
        """The name other workloads reach this one by, in either tier."""
        return self.workload.name


@dataclass(frozen=True)
class ChartSpec:
    """A Helm chart: ``chart`` at ``version`` from ``repo`` (a chart
    repository URL, or an ``oci://`` registry path holding ``<chart>``), or,
    with ``path``, the chart in that local directory or archive (the version
    must then match its Chart.yaml). Its namespace enforces the "restricted"
    Pod Security profile like the platform's, and is closed like it: its
    pods may resolve names and call the API server, and take connections
    only on ``ingress_ports`` (a webhook's, which the API server calls)."""

    name: str
    chart: str
    version: str
    repo: str
    namespace: str
    values: dict[str, object]
    path: str | None = None
    ingress_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class PodFlows:
    """Traffic allowed for pods selected by labels: among themselves, to
    named workloads, and to the cluster's API server."""

    selector: dict[str, str]
    to_workloads: tuple[str, ...]
    among_themselves: bool = True
    to_api_server: bool = False


class Target(Protocol):
    """A tier the platform deploys to: what every target implements."""

    name: str
    # How the platform names what it declares (unique per platform).
    names: Names
    # The network a container started outside the stack joins to reach
    # workloads by name (the jobs CLI's spark-submit); None where there is none.
    network_name: str | None

    def deploy(self, workload: Workload, parent: pulumi.Resource) -> Deployment: ...

    @property
    def deployed(self) -> Mapping[str, Workload]:
        """Every workload deployed so far, by name."""
        ...

    def image_name(self, workload_image: ImageRef) -> pulumi.Output[str]:
        """The reference a workload's image resolves to in this tier."""
        ...

    def metrics_host(self, workload: Workload) -> str:
        """A DNS name resolving to every replica of the workload."""
        ...

    def published_url(self, workload: Workload, port: str, scheme: str = "http") -> pulumi.Output[str]:
        """How a user reaches the port: a host port in dev, a cluster URL in prod."""
        ...

    def finalize(self) -> None:
        """Called once every workload is deployed (network policies)."""
        ...


@runtime_checkable
class ClusterTarget(Target, Protocol):
    """A target with a cluster's API: what a service may use where it has one
    (the Spark Operator in prod). Services ask ``isinstance(target,
    ClusterTarget)``; a target without these capabilities does not declare
    them."""

    def install_chart(self, spec: ChartSpec, parent: pulumi.Resource) -> pulumi.Resource: ...

    def service_account(
        self, name: str, rules: RoleRules, parent: pulumi.Resource, mount_token: bool = False
    ) -> pulumi.Resource:
        """A service account bound to ``rules`` in the platform namespace; its
        token is mounted into pods only with ``mount_token``."""
        ...

    def custom_resource(
        self, name: str, manifest: Manifest, parent: pulumi.Resource, depends_on: list[pulumi.Resource]
    ) -> pulumi.Resource:
        """``manifest`` declared in the platform namespace, after ``depends_on``."""
        ...

    def secret_volume(
        self, name: str, files: tuple[File, ...], parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        """A Secret holding ``files`` for pods the target did not create;
        returns its name."""
        ...

    def allow_flows(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        """Network access for pods the target did not create (Spark pods)."""
        ...
