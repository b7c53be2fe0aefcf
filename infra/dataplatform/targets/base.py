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
    # Kubernetes: the namespace it runs in.
    namespace: str | None = None

    @property
    def host(self) -> str:
        """The name other workloads reach this one by, in either tier."""
        return self.workload.name

    @property
    def qualified_host(self) -> str:
        """The name pods of other namespaces reach it by (the same as ``host``
        in Docker, which has none)."""
        return f"{self.workload.name}.{self.namespace}.svc" if self.namespace else self.workload.name


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
class PodAdmission:
    """Which pods one service account may create, checked by the API server
    at admission (pods the target did not create: Spark's executors, made
    by their driver). The account ``creator`` may create only pods that:

    - carry every label of ``labels`` and none of the keys in
      ``forbidden_label_keys`` (a service's label would make the pod pass
      for that service);
    - are owned by the very pod whose token made the request (its own
      application's executors, not another's);
    - run as ``account``, from one of ``images``;
    - mount no volume but emptyDir, ConfigMaps and the Secret ``secret``.
    """

    creator: str
    account: str
    images: tuple[pulumi.Input[str], ...]
    secret: pulumi.Input[str]
    labels: dict[str, str]
    forbidden_label_keys: tuple[str, ...] = ()


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

    # Where jobs run (pods the target did not create): a namespace apart
    # from the services and their secrets. Every method below declares there.
    jobs_namespace: str

    def service_account(
        self, name: str, rules: RoleRules, parent: pulumi.Resource, mount_token: bool = False
    ) -> pulumi.Resource:
        """A service account in the jobs namespace, bound to ``rules`` (none
        when empty); its token is mounted into pods only with ``mount_token``."""
        ...

    def custom_resource(
        self, name: str, manifest: Manifest, parent: pulumi.Resource, depends_on: list[pulumi.Resource]
    ) -> pulumi.Resource:
        """``manifest`` declared in the jobs namespace, after ``depends_on``."""
        ...

    def secret_volume(
        self, name: str, files: tuple[File, ...], parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        """A Secret in the jobs namespace holding ``files``; returns its name."""
        ...

    def allow_flows(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        """Network access for pods of the jobs namespace (Spark pods)."""
        ...

    def admit_pods(self, name: str, admission: PodAdmission, parent: pulumi.Resource) -> pulumi.Resource:
        """An admission policy of the API server on the pods created in the
        jobs namespace by ``admission.creator`` (see ``PodAdmission``)."""
        ...
