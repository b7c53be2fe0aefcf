"""A target-neutral description of a containerised workload.

Service modules build these; the Docker and Kubernetes targets render them.
Nothing here knows about either target, and targets know nothing about a
particular service. Fields whose meaning differs between tiers say so.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import pulumi

from dataplatform.config import Resources
from dataplatform.project import DEFAULT_VERSION, PROJECT, image_reference

# Re-exported: services take it from here, beside the File it constrains.
from jobs.conventions import SECRETS_DIR as SECRETS_DIR


class WorkloadError(ValueError):
    """A workload declared with contradictory or impossible arguments."""


@dataclass(frozen=True)
class ProjectImage:
    """An image built from this repository, resolved by its service.

    ``override`` is a reference the stack configured instead; both targets
    use it as it is. Otherwise the Docker target builds the image from
    ``dockerfile`` with ``context`` (both relative to the project root) and
    the Kubernetes target pulls ``<registry>/<name>:<tag>``.
    """

    name: str
    context: str
    dockerfile: str
    tag: str
    override: str | None = None

    @classmethod
    def of_service(cls, name: str) -> ProjectImage:
        """The image of the service under ``services/<name>``, built from its Dockerfile."""
        return cls(name, f"services/{name}", f"services/{name}/Dockerfile", DEFAULT_VERSION)

    def reference(self, registry: str = PROJECT) -> str:
        return image_reference(self.name, self.tag, registry)


ImageRef = ProjectImage | str


@dataclass(frozen=True)
class Port:
    """A container port.

    ``host_port`` publishes it on the dev host (on the configured bind
    address); Kubernetes ignores it. ``service_port`` is the Kubernetes
    Service port in front of it (defaults to the container port).
    """

    name: str
    container_port: int
    host_port: int | None = None
    service_port: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.container_port <= 65535:
            raise WorkloadError(f"port {self.name}: container port {self.container_port} out of range")
        if len(self.name) > 15:
            raise WorkloadError(f"port name {self.name!r} is longer than 15 characters")


@dataclass(frozen=True)
class Volume:
    """Persistent data: a named Docker volume, a Kubernetes PVC.

    Retained when the workload is replaced and on ``pulumi destroy``,
    unless the stack sets ``purgeOnDestroy``.
    """

    name: str
    mount_path: str
    size: str


@dataclass(frozen=True)
class File:
    """A file placed in the container before it starts, read-only to it.

    Secret files live under ``/run/secrets`` and render as a Kubernetes
    Secret; others render as a ConfigMap. Docker: one volume per directory,
    filled before start and mounted read-only, with secret files owned by
    the workload's user and mode 0400 (content kept as a Pulumi secret).
    Files of one directory share one kind.
    """

    path: str
    content: pulumi.Input[str]
    secret: bool = False

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise WorkloadError(f"file path {self.path!r} must be absolute")
        if self.secret and posixpath.dirname(self.path) != SECRETS_DIR:
            raise WorkloadError(f"secret file {self.path!r} must be directly under {SECRETS_DIR}")

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.path)

    @property
    def filename(self) -> str:
        return posixpath.basename(self.path)


class ProbeKind(StrEnum):
    HTTP = "http"
    TCP = "tcp"
    EXEC = "exec"


@dataclass(frozen=True)
class HealthCheck:
    """How to tell the workload is ready and alive.

    HTTP and TCP checks run from outside the container in Kubernetes; the
    Docker engine can only run a command inside it, so every check also
    carries ``command``, a command that performs the same test in the image.
    """

    kind: ProbeKind
    command: tuple[str, ...]
    port: int | None = None
    path: str | None = None
    interval_seconds: int = 10
    timeout_seconds: int = 5
    retries: int = 6
    start_seconds: int = 10

    def __post_init__(self) -> None:
        if self.kind is not ProbeKind.EXEC and self.port is None:
            raise WorkloadError(f"{self.kind.value} health check needs a port")
        if self.kind is ProbeKind.HTTP and not (self.path or "").startswith("/"):
            raise WorkloadError("http health check needs a path starting with '/'")
        if not self.command:
            raise WorkloadError("health check needs a command for the Docker engine")


@dataclass(frozen=True)
class Metrics:
    """A Prometheus scrape endpoint of the workload."""

    port: int
    path: str = "/metrics"
    scheme: Literal["http"] = "http"


@dataclass(frozen=True)
class PodScrape:
    """Kubernetes only: pods the target did not create (Spark's drivers, an
    operator's controller) that a workload scrapes. ``job`` names the scrape
    job; the pods are those in ``namespace`` carrying every label of
    ``selector``, scraped on the container port ``port`` at ``path``.
    ``transient``: pods that exist only while a job runs, so the job having
    no target is no outage.

    The target finds them as it finds a workload's replicas: a headless
    Service (``service``) selecting them, whose name the cluster's DNS
    answers with every ready pod."""

    job: str
    namespace: str
    selector: dict[str, str]
    port: int
    path: str = "/metrics"
    transient: bool = False

    @property
    def service(self) -> str:
        return f"{self.job}-metrics"

    @property
    def host(self) -> str:
        """The name resolving to every ready pod scraped."""
        return f"{self.service}.{self.namespace}.svc"


@dataclass(frozen=True)
class Autoscaling:
    """Kubernetes only: an HPA between the bounds.

    Docker ignores it and runs the workload's ``replicas`` containers behind
    one network alias (only the first publishes host ports): dev has no
    autoscaler, which is a stated gap between the tiers.
    """

    min_replicas: int
    max_replicas: int
    cpu_utilization: int = 70

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise WorkloadError(
                f"autoscaling bounds {self.min_replicas}..{self.max_replicas} are not 1 <= min <= max"
            )


@dataclass(frozen=True)
class IngressTls:
    """Where the Ingress's certificate comes from, into the Secret ``secret_name``.

    - ``issuer``: a cert-manager ``Certificate`` from that issuer fills it;
    - ``certificate`` and ``private_key`` (PEM): the platform writes it;
    - neither: it exists already, made and renewed by the caller.
    """

    secret_name: str
    issuer: str | None = None
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = "ClusterIssuer"
    certificate: pulumi.Input[str] | None = None
    private_key: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if (self.certificate is None) != (self.private_key is None):
            raise WorkloadError("a TLS certificate needs its private key, and a key its certificate")
        if self.issuer and self.certificate is not None:
            raise WorkloadError("a TLS certificate comes from an issuer or is given, not both")


@dataclass(frozen=True)
class IngressRoute:
    """Kubernetes only: an Ingress for host ``host`` to the first port.

    With ``tls``, plain HTTP through the Ingress is redirected to HTTPS by
    the workload itself (it sees ``X-Forwarded-Proto: http``), whatever the
    controller.
    """

    host: str
    tls: IngressTls | None = None
    class_name: str | None = None
    # Only these path prefixes are routed; anything else (health, metrics)
    # stays inside the cluster.
    paths: tuple[str, ...] = ("/",)

    def __post_init__(self) -> None:
        if not self.paths or any(not p.startswith("/") for p in self.paths):
            raise WorkloadError(f"ingress paths {self.paths!r} must be absolute, and at least one")


@dataclass(frozen=True)
class Exposure:
    """How a workload is reachable from outside the platform.

    Docker publishes host ports whatever this says; Kubernetes gives the
    Service ``service_type`` and adds ``ingress`` when set. Its network
    policy admits pods of the namespaces in ``from_namespaces`` (an ingress
    controller's, say) on the workload's ports; ``None`` admits any source,
    which a ``LoadBalancer`` or ``NodePort`` Service needs (its clients are
    outside the cluster).
    """

    service_type: Literal["ClusterIP", "LoadBalancer", "NodePort"] = "ClusterIP"
    ingress: IngressRoute | None = None
    from_namespaces: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.service_type != "ClusterIP" and self.from_namespaces is not None:
            raise WorkloadError(
                f"a {self.service_type} Service takes traffic from outside the cluster; "
                "from_namespaces must be None"
            )


def flow_target(entry: str) -> tuple[str, str | None]:
    """A ``talks_to`` entry: ``name`` (every port of that workload) or
    ``name:port`` (only the port of that name)."""
    name, _, port = entry.partition(":")
    return name, port or None


@dataclass(frozen=True)
class Workload:
    """One service of the platform, as both targets need it.

    Secure defaults, which a service must opt out of explicitly:
    - runs as ``user`` (non-root; UID 0 is rejected);
    - read-only root filesystem, writable paths only in ``scratch``
      (tmpfs / emptyDir) and ``volumes``;
    - all Linux capabilities dropped, no privilege escalation,
      RuntimeDefault seccomp (Kubernetes) / no-new-privileges (Docker);
    - memory limited, health-checked, restarted a bounded number of times
      (Docker) or by the kubelet with back-off (Kubernetes).
    """

    name: str
    image: ImageRef
    user: int
    group: int
    resources: Resources
    # Docker's health check (which gates dependents and never restarts),
    # and Kubernetes' startup probe and, unless ``liveness`` is given, its
    # liveness probe: restarting would help.
    health: HealthCheck | None
    # Kubernetes only: ready for traffic, when that differs from alive (for
    # example, a dependency is down or a model cannot load). None: ``health``.
    readiness: HealthCheck | None = None
    # Kubernetes only: alive, when that is a weaker check than ``health``
    # (an image whose ready and alive endpoints differ, where ``health``
    # is the ready one Docker gates on). None: ``health``.
    liveness: HealthCheck | None = None
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    files: tuple[File, ...] = ()
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    scratch: tuple[str, ...] = ("/tmp",)
    replicas: int = 1
    autoscaling: Autoscaling | None = None
    metrics: Metrics | None = None
    depends_on: tuple[str, ...] = ()
    # Services this one opens connections to, as ``name`` or ``name:port``
    # (see ``flow_target``); network policies allow these flows and nothing else.
    talks_to: tuple[str, ...] = ()
    # Reachable from outside the platform; None keeps it internal.
    exposure: Exposure | None = None
    # A run-to-completion task (Kubernetes Job, Docker one-shot container).
    one_shot: bool = False
    # Kubernetes only: the pod's service account (Spark drivers create pods).
    service_account: str | None = None
    # Kubernetes only: pods this workload scrapes (see ``PodScrape``); the
    # target makes them discoverable and opens the network paths.
    scrapes_pods: tuple[PodScrape, ...] = ()
    # Kubernetes only: pods of one workload spread across nodes.
    spread: bool = True

    def __post_init__(self) -> None:
        if self.user == 0 or self.group == 0:
            raise WorkloadError(f"{self.name}: runs as root; give a non-zero user and group")
        if self.replicas < 1:
            raise WorkloadError(f"{self.name}: replicas must be at least 1")
        if self.autoscaling and self.volumes:
            raise WorkloadError(f"{self.name}: a workload with persistent volumes cannot autoscale")
        if self.one_shot and (self.autoscaling or self.ports):
            raise WorkloadError(f"{self.name}: a one-shot workload has no ports and no autoscaling")
        if not self.one_shot and self.health is None:
            raise WorkloadError(f"{self.name}: a long-running workload needs a health check")
        if self.volumes and self.replicas > 1:
            raise WorkloadError(f"{self.name}: persistent volumes are single-writer; replicas must be 1")
        names = [p.name for p in self.ports]
        if len(set(names)) != len(names):
            raise WorkloadError(f"{self.name}: port names repeat")
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise WorkloadError(f"{self.name}: file paths repeat")
        kinds: dict[str, bool] = {}
        for f in self.files:
            if kinds.setdefault(f.directory, f.secret) != f.secret:
                raise WorkloadError(f"{self.name}: {f.directory} mixes secret and plain files; split them")
        mounts = [v.mount_path for v in self.volumes] + list(self.scratch) + list(kinds)
        if len(set(mounts)) != len(mounts):
            raise WorkloadError(f"{self.name}: two mounts share a path: {sorted(mounts)}")
        declared = {p.container_port for p in self.ports}
        for check in (self.health, self.readiness, self.liveness):
            if check and check.port is not None and check.port not in declared:
                raise WorkloadError(f"{self.name}: health check port {check.port} is not a declared port")
        if (self.readiness or self.liveness) and self.health is None:
            raise WorkloadError(f"{self.name}: readiness and liveness checks need a health check beside them")
        if self.metrics and self.metrics.port not in {p.container_port for p in self.ports}:
            raise WorkloadError(f"{self.name}: metrics port {self.metrics.port} is not a declared port")
        jobs = [s.job for s in self.scrapes_pods]
        if len(set(jobs)) != len(jobs):
            raise WorkloadError(f"{self.name}: pod scrape jobs repeat")

    def port_named(self, name: str) -> Port | None:
        return next((p for p in self.ports if p.name == name), None)

    def port_of(self, container_port: int) -> Port:
        for p in self.ports:
            if p.container_port == container_port:
                return p
        raise KeyError(f"{self.name} declares no port {container_port}")

    @property
    def public(self) -> bool:
        return self.exposure is not None

    @property
    def stateful(self) -> bool:
        return bool(self.volumes)

    def port(self, name: str) -> Port:
        found = self.port_named(name)
        if found is None:
            raise KeyError(f"{self.name} has no port {name!r}")
        return found


def http_check(
    port: int,
    path: str,
    via: Literal["python", "bash", "wget"] = "python",
    **timing: int,
) -> HealthCheck:
    """An HTTP GET check.

    Kubernetes probes the port itself; inside a container (Docker) the check
    uses what the image has, so no image needs curl: its Python, bash's
    ``/dev/tcp``, or busybox ``wget``.
    """
    url = f"http://127.0.0.1:{port}{path}"
    command: tuple[str, ...]
    if via == "python":
        command = (
            "python3",
            "-c",
            f"import sys, urllib.request; sys.exit(urllib.request.urlopen({url!r}, timeout=4).status >= 400)",
        )
    elif via == "wget":
        command = ("wget", "-q", "-T", "4", "-O", "/dev/null", url)
    else:
        request = f"GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n"
        command = (
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{request}' >&3 && head -n1 <&3 | grep -q ' 200 '",
        )
    return HealthCheck(ProbeKind.HTTP, command, port=port, path=path, **timing)
