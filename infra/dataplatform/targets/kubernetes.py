"""The prod tier's target: every workload as Kubernetes objects in one namespace.

Secure defaults applied to every pod: the "restricted" Pod Security profile
(non-root user, no privilege escalation, all capabilities dropped,
RuntimeDefault seccomp) enforced on the namespace as well, a read-only root
filesystem with emptyDir for scratch paths, no service-account token unless
the workload needs the API, requests and limits, readiness and liveness
probes (readiness apart from liveness where the image tells them apart), a
PodDisruptionBudget that lets a drain through one pod at a time, and a
default-deny NetworkPolicy with one policy per workload that
opens exactly the declared flows (``network_policy``). Credentials live in
Secrets mounted as files; no literal secret appears in an environment
variable. What services may ask of the cluster beyond workloads (charts,
custom resources, service accounts) is in ``cluster_extensions``.

Persistent volumes are PVCs kept on ``pulumi destroy`` unless the stack sets
``purgeOnDestroy``, and so is the namespace holding them (deleting a
namespace deletes its PVCs); workloads that own one run as a single replica
with the Recreate strategy so two pods never write the same volume. A
change to a workload's files (ConfigMaps, Secrets) rolls its pods.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform.config import KubernetesSettings
from dataplatform.naming import Names
from dataplatform.targets.base import Deployment
from dataplatform.targets.cluster_extensions import ClusterExtensions
from dataplatform.targets.namespace import SKIP_AWAIT, NamespaceOptions, PlatformNamespace, workload_labels
from dataplatform.targets.network_policy import NetworkPolicies
from dataplatform.workload import (
    File,
    HealthCheck,
    ImageRef,
    IngressRoute,
    IngressTls,
    ProbeKind,
    ProjectImage,
    Workload,
)
from jobs.conventions import NAME_LABEL, PART_OF

# On a pod template: the digest of the workload's ConfigMap and Secret
# contents, so changing one rolls the pods.
FILES_DIGEST = "dataplatform.io/files-sha256"
# How long a stopping replica of a scaled workload keeps serving first.
DRAIN_SECONDS = 5
# Every long-running workload's budget: a drain evicts one pod at a time
# and waits for its replacement to be ready, yet never blocks on a single
# replica (``minAvailable: 1`` would, forever), and an unhealthy pod never
# holds a drain up.
DISRUPTION_BUDGET = {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


@dataclass(frozen=True)
class KubernetesOptions:
    """The settings of the prod tier, and nothing else."""

    cluster: KubernetesSettings
    # Where the project's own images are pulled from.
    image_registry: str
    storage_class: str | None
    purge_on_destroy: bool
    # Secrets every pod pulls its image with.
    image_pull_secrets: tuple[str, ...] = ()
    # Declare the namespace (else it must exist), and make a provider from
    # ``cluster`` (else the caller's is inherited).
    create_namespace: bool = True
    own_provider: bool = True
    check_namespace: bool = True


class KubernetesTarget(ClusterExtensions):
    """Renders workloads with pulumi-kubernetes into ``kubernetes.namespace``.
    Implements ``Target``, and ``ClusterTarget`` through ``ClusterExtensions``."""

    name = "kubernetes"
    network_name: str | None = None

    def __init__(self, options: KubernetesOptions, stack: str, names: Names, parent: pulumi.Resource) -> None:
        self._options = options
        self._stack = stack
        self.names = names
        namespace_options = NamespaceOptions(
            options.cluster,
            options.purge_on_destroy,
            create=options.create_namespace,
            own_provider=options.own_provider,
            check_exists=options.check_namespace,
        )
        namespace = PlatformNamespace(namespace_options, names, parent)
        # Jobs apart: their pods never share a namespace with the services'
        # Secrets, so no job can mount one or pass for a service.
        jobs = PlatformNamespace(
            namespace_options,
            names,
            parent,
            name=options.cluster.jobs,
            key="jobs-namespace",
            provider_of=namespace,
            holds_data=False,
        )
        super().__init__(namespace, jobs, NetworkPolicies(namespace, jobs, options.cluster, parent))
        self.provider = namespace.provider
        self.namespace = namespace.name
        self._workloads: dict[str, Workload] = {}
        self._parents: dict[str, pulumi.Resource] = {}
        self._claims: dict[tuple[str, str], pulumi.Output[str]] = {}

    # -- helpers ----------------------------------------------------------

    def image_name(self, workload_image: ImageRef) -> pulumi.Output[str]:
        if isinstance(workload_image, ProjectImage):
            return pulumi.Output.from_input(
                workload_image.override or workload_image.reference(self._options.image_registry)
            )
        return pulumi.Output.from_input(workload_image)

    @property
    def deployed(self) -> Mapping[str, Workload]:
        return self._workloads

    def metrics_host(self, workload: Workload) -> str:
        # A headless Service resolves to every ready pod, so Prometheus'
        # DNS discovery scrapes each replica rather than one at random.
        return f"{workload.name}-pods.{self.namespace}.svc"

    def published_url(self, workload: Workload, port: str, scheme: str = "http") -> pulumi.Output[str]:
        p = workload.port(port)
        ingress = workload.exposure.ingress if workload.exposure else None
        if ingress:
            secure = "https" if ingress.tls else "http"
            return pulumi.Output.from_input(f"{secure}://{ingress.host}")
        service_port = p.service_port or p.container_port
        return pulumi.Output.from_input(f"{scheme}://{workload.name}.{self.namespace}.svc:{service_port}")

    # -- pods -------------------------------------------------------------

    def _probe(self, health: HealthCheck, liveness: bool) -> dict[str, Any]:
        probe: dict[str, Any] = {
            "periodSeconds": health.interval_seconds * (2 if liveness else 1),
            "timeoutSeconds": health.timeout_seconds,
            "failureThreshold": health.retries,
        }
        if health.kind is ProbeKind.HTTP:
            probe["httpGet"] = {"path": health.path, "port": health.port}
        elif health.kind is ProbeKind.TCP:
            probe["tcpSocket"] = {"port": health.port}
        else:
            probe["exec"] = {"command": list(health.command)}
        return probe

    def _resources(self, workload: Workload) -> dict[str, Any]:
        r = workload.resources
        limits = {"memory": r.memory_limit}
        if r.cpu_limit:
            limits["cpu"] = r.cpu_limit
        return {"requests": {"cpu": r.cpu_request, "memory": r.memory_request}, "limits": limits}

    def _file_volumes(
        self, workload: Workload, parent: pulumi.Resource
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """One ConfigMap per plain-file directory, one Secret for secret files."""
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        by_dir: dict[str, list[Any]] = {}
        for f in workload.files:
            by_dir.setdefault(f.directory, []).append(f)
        for index, (directory, files) in enumerate(sorted(by_dir.items())):
            volume = f"files-{index}"
            name = f"{workload.name}-files-{index}"
            data = {f.filename: f.content for f in files}
            items = [{"key": f.filename, "path": f.filename} for f in files]
            meta = self._namespace.meta(name, workload_labels(workload.name))
            opts = self._namespace.opts(parent)
            secret = files[0].secret
            # Secret files are readable by the pod's group (its fsGroup) only.
            projection = {"items": items, "defaultMode": 0o440 if secret else 0o444}
            source: dict[str, Any]
            if secret:
                made = k8s.core.v1.Secret(
                    self._namespace.names.of(name), metadata=meta, type="Opaque", string_data=data, opts=opts
                )
                source = {"secret": {"secretName": made.metadata.name, **projection}}
            else:
                made = k8s.core.v1.ConfigMap(
                    self._namespace.names.of(name), metadata=meta, data=data, opts=opts
                )
                source = {"configMap": {"name": made.metadata.name, **projection}}
            volumes.append({"name": volume, **source})
            mounts.append({"name": volume, "mountPath": directory, "readOnly": True})
        return volumes, mounts

    def _pod_spec(self, workload: Workload, parent: pulumi.Resource) -> dict[str, Any]:
        volumes, mounts = self._file_volumes(workload, parent)
        for index, path in enumerate(workload.scratch):
            volumes.append({"name": f"scratch-{index}", "emptyDir": {"sizeLimit": "512Mi"}})
            mounts.append({"name": f"scratch-{index}", "mountPath": path})
        for v in workload.volumes:
            claim = self._claims[(workload.name, v.name)]
            volumes.append({"name": v.name, "persistentVolumeClaim": {"claimName": claim}})
            mounts.append({"name": v.name, "mountPath": v.mount_path})
        container: dict[str, Any] = {
            "name": workload.name,
            "image": self.image_name(workload.image),
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": k, "value": v} for k, v in sorted(workload.env.items())],
            "ports": [
                {"name": p.name, "containerPort": p.container_port, "protocol": "TCP"} for p in workload.ports
            ],
            "resources": self._resources(workload),
            "volumeMounts": mounts,
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        if workload.ports and not workload.one_shot and (workload.autoscaling or workload.replicas > 1):
            # A replica being stopped keeps serving while the Service drops
            # it (endpoints reach every node a moment later), so no request
            # is sent to a closing pod; then it gets SIGTERM and drains.
            container["lifecycle"] = {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}}
        if workload.command:
            container["command"] = list(workload.command)
        if workload.args is not None:
            container["args"] = list(workload.args)
        if workload.health:
            container["readinessProbe"] = self._probe(workload.readiness or workload.health, liveness=False)
            container["livenessProbe"] = self._probe(workload.liveness or workload.health, liveness=True)
            container["startupProbe"] = {
                **self._probe(workload.health, liveness=False),
                "periodSeconds": 5,
                "failureThreshold": max(12, workload.health.start_seconds // 5 + 6),
            }
        spec: dict[str, Any] = {
            "automountServiceAccountToken": workload.service_account is not None,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": workload.user,
                "runAsGroup": workload.group,
                "fsGroup": workload.group,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        }
        if workload.service_account:
            spec["serviceAccountName"] = workload.service_account
        if self._options.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": name} for name in self._options.image_pull_secrets]
        if workload.spread and (workload.replicas > 1 or workload.autoscaling):
            spec["topologySpreadConstraints"] = [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {NAME_LABEL: workload.name}},
                }
            ]
        return spec

    # -- workloads --------------------------------------------------------

    def _scrape_services(self, workload: Workload, parent: pulumi.Resource) -> list[pulumi.Resource]:
        """For each pod scrape of ``workload``, a headless Service in the
        pods' namespace selecting them by their labels: the cluster's DNS
        then answers its name with every ready pod, as for the workloads'
        own metrics, and the scraper needs no access to the API server."""
        made: list[pulumi.Resource] = []
        for scrape in workload.scrapes_pods:
            name = scrape.service
            made.append(
                k8s.core.v1.Service(
                    self._namespace.names.of(f"{name}-{scrape.namespace}"),
                    metadata={
                        "name": name,
                        "namespace": scrape.namespace,
                        "labels": dict(PART_OF),
                        "annotations": {SKIP_AWAIT: "true"},
                    },
                    spec={
                        "clusterIP": "None",
                        "selector": dict(scrape.selector),
                        "ports": [{"name": "metrics", "port": scrape.port}],
                    },
                    opts=self._policies.opts_in(scrape.namespace, parent),
                )
            )
        return made

    def deploy(self, workload: Workload, parent: pulumi.Resource) -> Deployment:
        labels = workload_labels(workload.name)
        made: list[pulumi.Resource] = self._scrape_services(workload, parent)
        for v in workload.volumes:
            claim_spec: dict[str, Any] = {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": v.size}},
            }
            if self._options.storage_class:
                claim_spec["storageClassName"] = self._options.storage_class
            # Nothing to await on a claim: it binds when its pod schedules
            # (which the Deployment's await covers), and a claim kept from
            # before a destroy never reports the event the provider waits for.
            claim = k8s.core.v1.PersistentVolumeClaim(
                self._namespace.names.of(f"{workload.name}-{v.name}"),
                metadata={
                    **self._namespace.meta(f"{workload.name}-{v.name}", labels),
                    "annotations": {SKIP_AWAIT: "true"},
                },
                spec=claim_spec,
                opts=self._namespace.opts(parent, retain_on_delete=not self._options.purge_on_destroy),
            )
            self._claims[(workload.name, v.name)] = claim.metadata.name
            made.append(claim)

        pod: dict[str, Any] = {"metadata": {"labels": labels}, "spec": self._pod_spec(workload, parent)}
        if workload.files:
            pod["metadata"]["annotations"] = {FILES_DIGEST: _files_digest(workload.files)}
        if workload.one_shot:
            pod["spec"]["restartPolicy"] = "Never"
            made.append(
                k8s.batch.v1.Job(
                    self._namespace.names.of(workload.name),
                    metadata=self._namespace.meta(workload.name, labels),
                    spec={"backoffLimit": 4, "template": pod},
                    opts=self._namespace.opts(parent, delete_before_replace=True),
                )
            )
        else:
            made.append(
                k8s.apps.v1.Deployment(
                    self._namespace.names.of(workload.name),
                    metadata=self._namespace.meta(workload.name, labels),
                    spec={
                        "replicas": None if workload.autoscaling else workload.replicas,
                        "selector": {"matchLabels": {NAME_LABEL: workload.name}},
                        "strategy": {"type": "Recreate"}
                        if workload.stateful
                        else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
                        "template": pod,
                    },
                    opts=self._namespace.opts(parent),
                )
            )
        if workload.ports:
            service_type = workload.exposure.service_type if workload.exposure else "ClusterIP"
            metadata = self._namespace.meta(workload.name, labels)
            if service_type == "ClusterIP":
                # The Deployment behind it is awaited ready. The provider's
                # own wait on a ClusterIP Service (for endpoints, which no
                # pod gives yet while the Deployment is being made) only held
                # one of the engine's parallel steps (8 on 2 cores) for 10 s
                # each, delaying the rest of the first up. A LoadBalancer
                # keeps its wait: its address is what the caller waits for.
                metadata = {**metadata, "annotations": {SKIP_AWAIT: "true"}}
            made.append(
                k8s.core.v1.Service(
                    self._namespace.names.of(workload.name),
                    metadata=metadata,
                    spec={
                        "type": service_type,
                        "selector": {NAME_LABEL: workload.name},
                        "ports": [
                            {
                                "name": p.name,
                                "port": p.service_port or p.container_port,
                                "targetPort": p.name,
                                "protocol": "TCP",
                            }
                            for p in workload.ports
                        ],
                    },
                    opts=self._namespace.opts(parent),
                )
            )
        if workload.metrics:
            made.append(
                k8s.core.v1.Service(
                    self._namespace.names.of(f"{workload.name}-pods"),
                    metadata=self._namespace.meta(f"{workload.name}-pods", labels),
                    spec={
                        "clusterIP": "None",
                        "selector": {NAME_LABEL: workload.name},
                        "ports": [{"name": "metrics", "port": workload.metrics.port}],
                    },
                    opts=self._namespace.opts(parent),
                )
            )
        if workload.autoscaling:
            scaling = workload.autoscaling
            made.append(
                k8s.autoscaling.v2.HorizontalPodAutoscaler(
                    self._namespace.names.of(workload.name),
                    metadata=self._namespace.meta(workload.name, labels),
                    spec={
                        "scaleTargetRef": {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": workload.name,
                        },
                        "minReplicas": scaling.min_replicas,
                        "maxReplicas": scaling.max_replicas,
                        "metrics": [
                            {
                                "type": "Resource",
                                "resource": {
                                    "name": "cpu",
                                    "target": {
                                        "type": "Utilization",
                                        "averageUtilization": scaling.cpu_utilization,
                                    },
                                },
                            }
                        ],
                    },
                    opts=self._namespace.opts(parent),
                )
            )
        if not workload.one_shot:
            made.append(
                k8s.policy.v1.PodDisruptionBudget(
                    self._namespace.names.of(workload.name),
                    metadata=self._namespace.meta(workload.name, labels),
                    spec=DISRUPTION_BUDGET | {"selector": {"matchLabels": {NAME_LABEL: workload.name}}},
                    opts=self._namespace.opts(parent),
                )
            )
        if workload.exposure and workload.exposure.ingress and workload.ports:
            made.append(self._ingress(workload, workload.exposure.ingress, parent))
        self._workloads[workload.name] = workload
        self._parents[workload.name] = parent
        return Deployment(workload, made, namespace=self.namespace)

    def finalize(self) -> None:
        """Network policies, once every workload and flow is known."""
        self._policies.finalize(self._workloads, self._parents)

    def _ingress(self, workload: Workload, ingress: IngressRoute, parent: pulumi.Resource) -> pulumi.Resource:
        port = workload.ports[0]
        spec: dict[str, Any] = {
            "rules": [
                {
                    "host": ingress.host,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": workload.name,
                                        "port": {"number": port.service_port or port.container_port},
                                    }
                                },
                            }
                            for path in ingress.paths
                        ]
                    },
                }
            ]
        }
        if ingress.class_name:
            spec["ingressClassName"] = ingress.class_name
        depends_on: list[pulumi.Resource] = []
        if ingress.tls:
            spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls.secret_name}]
            made = self._tls_secret(workload, ingress.host, ingress.tls, parent)
            depends_on += [made] if made else []
        return k8s.networking.v1.Ingress(
            self._namespace.names.of(workload.name),
            metadata=self._namespace.meta(workload.name, workload_labels(workload.name)),
            spec=spec,
            opts=self._namespace.opts(parent, depends_on=depends_on),
        )

    def _tls_secret(
        self, workload: Workload, host: str, tls: IngressTls, parent: pulumi.Resource
    ) -> pulumi.Resource | None:
        """The Ingress's certificate Secret: a cert-manager Certificate that
        fills it, or the Secret itself from the given PEM (kept as a Pulumi
        secret); None when the caller makes it."""
        labels = workload_labels(workload.name)
        if tls.issuer:
            return k8s.apiextensions.CustomResource(
                self._namespace.names.of(f"{workload.name}-tls"),
                api_version="cert-manager.io/v1",
                kind="Certificate",
                metadata=self._namespace.meta(f"{workload.name}-tls", labels),
                spec={
                    "secretName": tls.secret_name,
                    "dnsNames": [host],
                    "issuerRef": {"name": tls.issuer, "kind": tls.issuer_kind, "group": "cert-manager.io"},
                    "privateKey": {"rotationPolicy": "Always"},
                },
                opts=self._namespace.opts(parent),
            )
        if tls.certificate is None or tls.private_key is None:
            return None
        return k8s.core.v1.Secret(
            self._namespace.names.of(f"{workload.name}-tls"),
            metadata={**self._namespace.meta(f"{workload.name}-tls", labels), "name": tls.secret_name},
            type="kubernetes.io/tls",
            string_data={"tls.crt": tls.certificate, "tls.key": pulumi.Output.secret(tls.private_key)},
            opts=self._namespace.opts(parent),
        )


def _files_digest(files: tuple[File, ...]) -> pulumi.Output[str]:
    """sha256 over the workload's file paths and contents (a secret's digest
    reveals nothing of it, but stays marked secret in the state)."""

    def digest(contents: list[str]) -> str:
        h = hashlib.sha256()
        for f, content in zip(files, contents, strict=True):
            h.update(f"{f.path}\0{content}\0".encode())
        return h.hexdigest()

    return pulumi.Output.all(*(f.content for f in files)).apply(digest)
