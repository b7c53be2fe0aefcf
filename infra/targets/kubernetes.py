"""The prod tier: every workload as Kubernetes objects in one namespace.

Secure defaults applied to every pod: the "restricted" Pod Security profile
(non-root user, no privilege escalation, all capabilities dropped,
RuntimeDefault seccomp) enforced on the namespace as well, a read-only root
filesystem with emptyDir for scratch paths, no service-account token unless
the workload needs the API, requests and limits, readiness and liveness
probes, and a default-deny NetworkPolicy with one policy per workload that
opens exactly the declared flows. Credentials live in Secrets mounted as
files; no literal secret appears in an environment variable.

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

from infra.settings import KubernetesSettings
from infra.targets.base import ChartSpec, Deployment, PodFlows
from infra.workload import File, HealthCheck, ImageRef, IngressRoute, ProbeKind, ProjectImage, Workload

LABEL = "app.kubernetes.io/name"
PART_OF = {"app.kubernetes.io/part-of": "dataplatform"}
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
API_SERVER_PORTS = [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
PSA_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# On a pod template: the digest of the workload's ConfigMap and Secret
# contents, so changing one rolls the pods.
FILES_DIGEST = "dataplatform.io/files-sha256"


def _labels(name: str) -> dict[str, str]:
    return {LABEL: name, **PART_OF}


@dataclass(frozen=True)
class KubernetesOptions:
    """The settings of the prod tier, and nothing else."""

    cluster: KubernetesSettings
    # Where the project's own images are pulled from.
    image_registry: str
    storage_class: str | None
    purge_on_destroy: bool


class KubernetesTarget:
    """Renders workloads with pulumi-kubernetes into ``kubernetes.namespace``.
    Implements ``ClusterTarget`` as well as ``Target``."""

    name = "kubernetes"
    network_name: str | None = None

    def __init__(self, options: KubernetesOptions, stack: str, parent: pulumi.Resource) -> None:
        self._options = options
        self._stack = stack
        kube = options.cluster
        self.provider = k8s.Provider(
            "kubernetes",
            render_yaml_to_directory=kube.render_dir,
            context=kube.kubeconfig_context,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        self.namespace = kube.namespace
        self._workloads: dict[str, Workload] = {}
        self._parents: dict[str, pulumi.Resource] = {}
        self._pod_flows: dict[str, tuple[PodFlows, pulumi.Resource]] = {}
        self._claims: dict[tuple[str, str], pulumi.Output[str]] = {}
        self._ns = k8s.core.v1.Namespace(
            "namespace",
            metadata={
                "name": self.namespace,
                "labels": {**PART_OF, **PSA_RESTRICTED},
            },
            # Deleting the namespace would take the retained PVCs with it.
            opts=self._opts(parent, retain_on_delete=not options.purge_on_destroy),
        )
        k8s.networking.v1.NetworkPolicy(
            "default-deny",
            metadata=self._meta("default-deny"),
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            opts=self._opts(parent),
        )

    # -- helpers ----------------------------------------------------------

    def _opts(self, parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
        depends = list(extra.pop("depends_on", []))
        if hasattr(self, "_ns"):
            depends.append(self._ns)
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, depends_on=depends, **extra)

    def _meta(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {"name": name, "namespace": self.namespace, "labels": labels or dict(PART_OF)}

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
            secure = "https" if ingress.tls_secret_name else "http"
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
            if files[0].secret:
                secret = k8s.core.v1.Secret(
                    name,
                    metadata=self._meta(name, _labels(workload.name)),
                    type="Opaque",
                    string_data=data,
                    opts=self._opts(parent),
                )
                source = {
                    "secret": {
                        "secretName": secret.metadata.name,
                        "items": items,
                        "defaultMode": 0o440,
                    }
                }
            else:
                config = k8s.core.v1.ConfigMap(
                    name,
                    metadata=self._meta(name, _labels(workload.name)),
                    data=data,
                    opts=self._opts(parent),
                )
                source = {
                    "configMap": {
                        "name": config.metadata.name,
                        "items": items,
                        "defaultMode": 0o444,
                    }
                }
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
        if workload.command:
            container["command"] = list(workload.command)
        if workload.args is not None:
            container["args"] = list(workload.args)
        if workload.health:
            container["readinessProbe"] = self._probe(workload.readiness or workload.health, liveness=False)
            container["livenessProbe"] = self._probe(workload.health, liveness=True)
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
        if workload.spread and (workload.replicas > 1 or workload.autoscaling):
            spec["topologySpreadConstraints"] = [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {LABEL: workload.name}},
                }
            ]
        return spec

    # -- workloads --------------------------------------------------------

    def deploy(self, workload: Workload, parent: pulumi.Resource) -> Deployment:
        labels = _labels(workload.name)
        made: list[pulumi.Resource] = []
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
                f"{workload.name}-{v.name}",
                metadata={
                    **self._meta(f"{workload.name}-{v.name}", labels),
                    "annotations": {"pulumi.com/skipAwait": "true"},
                },
                spec=claim_spec,
                opts=self._opts(parent, retain_on_delete=not self._options.purge_on_destroy),
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
                    workload.name,
                    metadata=self._meta(workload.name, labels),
                    spec={"backoffLimit": 4, "template": pod},
                    opts=self._opts(parent, delete_before_replace=True),
                )
            )
        else:
            made.append(
                k8s.apps.v1.Deployment(
                    workload.name,
                    metadata=self._meta(workload.name, labels),
                    spec={
                        "replicas": None if workload.autoscaling else workload.replicas,
                        "selector": {"matchLabels": {LABEL: workload.name}},
                        "strategy": {"type": "Recreate"}
                        if workload.stateful
                        else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
                        "template": pod,
                    },
                    opts=self._opts(parent),
                )
            )
        if workload.ports:
            service_type = workload.exposure.service_type if workload.exposure else "ClusterIP"
            made.append(
                k8s.core.v1.Service(
                    workload.name,
                    metadata=self._meta(workload.name, labels),
                    spec={
                        "type": service_type,
                        "selector": {LABEL: workload.name},
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
                    opts=self._opts(parent),
                )
            )
        if workload.metrics:
            made.append(
                k8s.core.v1.Service(
                    f"{workload.name}-pods",
                    metadata=self._meta(f"{workload.name}-pods", labels),
                    spec={
                        "clusterIP": "None",
                        "selector": {LABEL: workload.name},
                        "ports": [{"name": "metrics", "port": workload.metrics.port}],
                    },
                    opts=self._opts(parent),
                )
            )
        if workload.autoscaling:
            scaling = workload.autoscaling
            made.append(
                k8s.autoscaling.v2.HorizontalPodAutoscaler(
                    workload.name,
                    metadata=self._meta(workload.name, labels),
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
                    opts=self._opts(parent),
                )
            )
        if not workload.one_shot and (workload.autoscaling or workload.replicas > 1):
            made.append(
                k8s.policy.v1.PodDisruptionBudget(
                    workload.name,
                    metadata=self._meta(workload.name, labels),
                    spec={"minAvailable": 1, "selector": {"matchLabels": {LABEL: workload.name}}},
                    opts=self._opts(parent),
                )
            )
        if workload.exposure and workload.exposure.ingress and workload.ports:
            made.append(self._ingress(workload, workload.exposure.ingress, parent))
        self._workloads[workload.name] = workload
        self._parents[workload.name] = parent
        return Deployment(workload, made)

    def finalize(self) -> None:
        """Network policies, once every workload and flow is known."""
        for name, workload in self._workloads.items():
            self._network_policy(workload, self._parents[name])
        for name, (flows, parent) in self._pod_flows.items():
            self._pod_policy(name, flows, parent)

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
        if ingress.tls_secret_name:
            spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls_secret_name}]
        return k8s.networking.v1.Ingress(
            workload.name,
            metadata=self._meta(workload.name, _labels(workload.name)),
            spec=spec,
            opts=self._opts(parent),
        )

    def _network_policy(self, workload: Workload, parent: pulumi.Resource) -> pulumi.Resource:
        """Ingress from the workloads that declare they talk to this one (and
        from anywhere for a public one); egress to DNS and to the workloads
        this one talks to."""
        ports = [{"protocol": "TCP", "port": p.container_port} for p in workload.ports]
        ingress: list[dict[str, Any]] = []
        if workload.ports:
            if workload.public:
                ingress.append({"ports": ports})
            callers = sorted({w.name for w in self._workloads.values() if workload.name in w.talks_to})
            pod_callers = [
                {"podSelector": {"matchLabels": flows.selector}}
                for flows, _ in self._pod_flows.values()
                if workload.name in flows.to_workloads
            ]
            if pod_callers:
                ingress.append({"from": pod_callers, "ports": ports})
            if callers:
                ingress.append(
                    {
                        "from": [
                            {
                                "podSelector": {
                                    "matchExpressions": [{"key": LABEL, "operator": "In", "values": callers}]
                                }
                            }
                        ],
                        "ports": ports,
                    }
                )
        egress: list[dict[str, Any]] = [{"ports": DNS_PORTS}]
        for target in workload.talks_to:
            egress.append(
                {
                    "to": [{"podSelector": {"matchLabels": {LABEL: target}}}],
                    "ports": self._ports_of(target),
                }
            )
        if workload.service_account:
            egress.append(self._api_server_egress())
        return k8s.networking.v1.NetworkPolicy(
            workload.name,
            metadata=self._meta(workload.name, _labels(workload.name)),
            spec={
                "podSelector": {"matchLabels": {LABEL: workload.name}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": egress,
            },
            opts=self._opts(parent),
        )

    def _api_server_egress(self) -> dict[str, Any]:
        """To the API server: its addresses when the stack names them
        (``kubernetes.apiServerCidrs``), else any address on its ports."""
        rule: dict[str, Any] = {"ports": API_SERVER_PORTS}
        cidrs = self._options.cluster.api_server_cidrs
        if cidrs:
            rule["to"] = [{"ipBlock": {"cidr": c}} for c in cidrs]
        return rule

    def _ports_of(self, name: str) -> list[dict[str, Any]]:
        workload = self._workloads.get(name)
        if workload is None:
            raise KeyError(f"a network flow names {name!r}, which is not a declared workload")
        return [{"protocol": "TCP", "port": p.container_port} for p in workload.ports]

    # -- cluster extensions ----------------------------------------------

    def install_chart(self, spec: ChartSpec, parent: pulumi.Resource) -> pulumi.Resource:
        namespace = k8s.core.v1.Namespace(
            f"{spec.name}-namespace",
            metadata={"name": spec.namespace, "labels": {**PART_OF, **PSA_RESTRICTED}},
            opts=pulumi.ResourceOptions(parent=parent, provider=self.provider),
        )
        source: dict[str, Any] = (
            {"chart": spec.path}
            if spec.path
            else {
                "chart": spec.chart,
                "version": spec.version,
                "repository_opts": k8s.helm.v4.RepositoryOptsArgs(repo=spec.repo),
            }
        )
        return k8s.helm.v4.Chart(
            spec.name,
            **source,
            namespace=spec.namespace,
            values=spec.values,
            opts=pulumi.ResourceOptions(parent=parent, provider=self.provider, depends_on=[namespace]),
        )

    def service_account(
        self,
        name: str,
        rules: list[dict[str, list[str]]],
        parent: pulumi.Resource,
        mount_token: bool = False,
    ) -> pulumi.Resource:
        account = k8s.core.v1.ServiceAccount(
            name,
            metadata=self._meta(name),
            automount_service_account_token=mount_token,
            opts=self._opts(parent),
        )
        role = k8s.rbac.v1.Role(name, metadata=self._meta(name), rules=rules, opts=self._opts(parent))
        k8s.rbac.v1.RoleBinding(
            name,
            metadata=self._meta(name),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": self.namespace}],
            opts=self._opts(parent, depends_on=[role, account]),
        )
        return account

    def custom_resource(
        self,
        name: str,
        manifest: dict[str, object],
        parent: pulumi.Resource,
        depends_on: list[pulumi.Resource],
    ) -> pulumi.Resource:
        body = dict(manifest)
        api_version = str(body.pop("apiVersion"))
        kind = str(body.pop("kind"))
        metadata = dict(body.pop("metadata", {}) or {})  # type: ignore[call-overload]
        metadata.setdefault("name", name)
        metadata["namespace"] = self.namespace
        return k8s.apiextensions.CustomResource(
            name,
            api_version=api_version,
            kind=kind,
            metadata=metadata,
            spec=body.get("spec"),
            opts=self._opts(parent, depends_on=depends_on),
        )

    def secret_volume(
        self, name: str, files: tuple[File, ...], parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        secret = k8s.core.v1.Secret(
            name,
            metadata=self._meta(name),
            type="Opaque",
            string_data={f.filename: f.content for f in files},
            opts=self._opts(parent),
        )
        return secret.metadata.name

    def allow_flows(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        self._pod_flows[name] = (flows, parent)

    def _pod_policy(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        peers = [{"podSelector": {"matchLabels": flows.selector}}]
        egress: list[dict[str, Any]] = [{"ports": DNS_PORTS}]
        ingress: list[dict[str, Any]] = []
        if flows.among_themselves:
            ingress.append({"from": peers})
            egress.append({"to": peers})
        for target in flows.to_workloads:
            egress.append(
                {
                    "to": [{"podSelector": {"matchLabels": {LABEL: target}}}],
                    "ports": self._ports_of(target),
                }
            )
        if flows.to_api_server:
            egress.append(self._api_server_egress())
        k8s.networking.v1.NetworkPolicy(
            name,
            metadata=self._meta(name),
            spec={
                "podSelector": {"matchLabels": flows.selector},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": egress,
            },
            opts=self._opts(parent),
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
