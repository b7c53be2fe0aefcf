"""Kubernetes rules: the "restricted" Pod Security profile, the kube-linter /
kube-score / Polaris checks, and stack-wide checks (NetworkPolicy coverage,
autoscalers and disruption budgets, Service selectors).

Workloads are every resource that carries a pod: Pod, Deployment,
StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob and
PodTemplate. Spark Operator applications (SparkApplication and
ScheduledSparkApplication) are read for their image, their environment and,
stack-wide, their pods' labels; their security contexts are the operator's
to render.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .common import (
    Config,
    Enforcement,
    Finding,
    Props,
    ResourceRule,
    StackResource,
    StackRule,
    default_credential_problem,
    dig,
    image_pin_problem,
    is_secret_name,
    items,
    map_selector_matches,
    mapping,
    nonempty,
    selector_matches,
    strings,
    unique,
)

# (API group, kind) of the resources that embed a pod template. The group of
# a resource type "kubernetes:apps/v1:Deployment" is "apps"; the core group
# is "core".
LONG_RUNNING_KINDS = frozenset(
    {
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("extensions", "Deployment"),
        ("extensions", "DaemonSet"),
        ("extensions", "ReplicaSet"),
        ("core", "ReplicationController"),
    }
)
WORKLOAD_KINDS = LONG_RUNNING_KINDS | {
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("core", "Pod"),
    ("core", "PodTemplate"),
}
SPARK_KINDS = frozenset(
    {("sparkoperator.k8s.io", "SparkApplication"), ("sparkoperator.k8s.io", "ScheduledSparkApplication")}
)

# Volume types the restricted profile allows.
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
ALLOWED_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})
EXPOSED_SERVICE_TYPES = frozenset({"LoadBalancer", "NodePort"})
IMAGE_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")

DEPLOYMENT_KIND = ("apps", "Deployment")
HPA_KIND = ("autoscaling", "HorizontalPodAutoscaler")
PDB_KIND = ("policy", "PodDisruptionBudget")
NETWORK_POLICY_KIND = ("networking.k8s.io", "NetworkPolicy")
SERVICE_KIND = ("core", "Service")

EXCLUDED_NAMESPACES: Mapping[str, Mapping[str, Any]] = {
    "excludedNamespaces": {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": "Namespaces whose workloads this policy skips (e.g. a third-party chart's).",
    }
}


def kind_of(resource_type: str) -> tuple[str, str] | None:
    """("apps", "Deployment") for "kubernetes:apps/v1:Deployment"."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes":
        return None
    group = parts[1].rsplit("/", 1)[0] if "/" in parts[1] else "core"
    return group, parts[2]


def is_workload(resource_type: str) -> bool:
    return kind_of(resource_type) in WORKLOAD_KINDS


def is_long_running(resource_type: str) -> bool:
    return kind_of(resource_type) in LONG_RUNNING_KINDS


def is_spark_app(resource_type: str) -> bool:
    return kind_of(resource_type) in SPARK_KINDS


def _is_kind(kind: tuple[str, str]) -> Callable[[str], bool]:
    return lambda resource_type: kind_of(resource_type) == kind


def namespace_of(props: Props) -> str:
    return str(dig(props, "metadata", "namespace") or "")


def name_of(resource: StackResource) -> str:
    return str(dig(resource.props, "metadata", "name") or resource.name)


def pod_template(resource_type: str, props: Props) -> Mapping[str, Any] | None:
    """The pod (``metadata`` and ``spec``) a workload runs, or None."""
    kind = kind_of(resource_type)
    if kind not in WORKLOAD_KINDS:
        return None
    assert kind is not None
    if kind == ("core", "Pod"):
        return props
    if kind == ("core", "PodTemplate"):
        return mapping(props.get("template"))
    if kind == ("batch", "CronJob"):
        return mapping(dig(props, "spec", "jobTemplate", "spec", "template"))
    return mapping(dig(props, "spec", "template"))


def pod_spec(resource_type: str, props: Props) -> Mapping[str, Any]:
    return mapping(mapping(pod_template(resource_type, props)).get("spec"))


def containers(spec: Mapping[str, Any], *, init: bool = True) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, container) of every container of a pod spec; with ``init``,
    init and ephemeral containers too."""
    groups = [("container", "containers")]
    if init:
        groups += [("init container", "initContainers"), ("ephemeral container", "ephemeralContainers")]
    found: list[tuple[str, Mapping[str, Any]]] = []
    for label, key in groups:
        for index, container in enumerate(items(spec.get(key))):
            c = mapping(container)
            found.append((f"{label} {c.get('name') or index!s}", c))
    return found


def spark_pods(props: Props) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, pod) of a SparkApplication's driver and executor; the spec of a
    ScheduledSparkApplication sits under ``template``."""
    spec = mapping(props.get("spec"))
    if "template" in spec:
        spec = mapping(spec.get("template"))
    return [(role, mapping(spec.get(role))) for role in ("driver", "executor") if role in spec]


def _excluded(props: Props, config: Config) -> bool:
    return namespace_of(props) in strings(config.get("excludedNamespaces"))


def _workload_rule(
    name: str,
    description: str,
    enforcement: Enforcement,
    check: Callable[[str, Mapping[str, Any]], list[str]],
    *,
    applies: Callable[[str], bool] = is_workload,
) -> ResourceRule:
    """A rule over the pod spec of a workload, with ``excludedNamespaces``."""

    def run(resource_type: str, props: Props, config: Config) -> list[str]:
        if _excluded(props, config):
            return []
        return unique(check(resource_type, pod_spec(resource_type, props)))

    return ResourceRule(name, description, enforcement, applies, run, EXCLUDED_NAMESPACES)


# -- Pod Security "restricted" -------------------------------------------


def check_run_as_non_root(_: str, spec: Mapping[str, Any]) -> list[str]:
    pod = mapping(spec.get("securityContext"))
    found: list[str] = []
    if pod.get("runAsUser") == 0:
        found.append("pod securityContext.runAsUser is 0 (root)")
    for label, c in containers(spec):
        sc = mapping(c.get("securityContext"))
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod.get("runAsNonRoot") is not True):
            found.append(f"{label}: runAsNonRoot must be true (on the pod or the container)")
        if sc.get("runAsUser") == 0:
            found.append(f"{label}: securityContext.runAsUser is 0 (root)")
    return found


def check_privilege_escalation(_: str, spec: Mapping[str, Any]) -> list[str]:
    return [
        f"{label}: securityContext.allowPrivilegeEscalation must be false"
        for label, c in containers(spec)
        if dig(c, "securityContext", "allowPrivilegeEscalation") is not False
    ]


def _capability(name: str) -> str:
    return name.upper().removeprefix("CAP_")


def check_capabilities(_: str, spec: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for label, c in containers(spec):
        caps = mapping(dig(c, "securityContext", "capabilities"))
        if "ALL" not in {_capability(d) for d in strings(caps.get("drop"))}:
            found.append(f"{label}: securityContext.capabilities.drop must include ALL")
        added = sorted({_capability(a) for a in strings(caps.get("add"))} - ALLOWED_ADDED_CAPABILITIES)
        if added:
            found.append(f"{label}: adds capabilities {', '.join(added)}; only NET_BIND_SERVICE may be added")
    return found


def check_seccomp(_: str, spec: Mapping[str, Any]) -> list[str]:
    pod_type = dig(spec, "securityContext", "seccompProfile", "type")
    found: list[str] = []
    if pod_type is not None and pod_type not in ALLOWED_SECCOMP:
        found.append(f"pod seccompProfile is {pod_type}; use RuntimeDefault")
    for label, c in containers(spec):
        own = dig(c, "securityContext", "seccompProfile", "type")
        if own is not None and own not in ALLOWED_SECCOMP:
            found.append(f"{label}: seccompProfile is {own}; use RuntimeDefault")
        elif own is None and pod_type is None:
            found.append(f"{label}: no seccompProfile; set type RuntimeDefault on the pod or the container")
    return found


def check_privileged(_: str, spec: Mapping[str, Any]) -> list[str]:
    return [
        f"{label}: runs privileged"
        for label, c in containers(spec)
        if dig(c, "securityContext", "privileged") is True
    ]


def check_host_namespaces(_: str, spec: Mapping[str, Any]) -> list[str]:
    found = [
        f"pod sets {key}: true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True
    ]
    for label, c in containers(spec):
        for port in items(c.get("ports")):
            if nonempty(mapping(port).get("hostPort")):
                found.append(f"{label}: binds hostPort {int(mapping(port)['hostPort'])} on the node")
    return found


def check_host_path(_: str, spec: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for volume in items(spec.get("volumes")):
        v = mapping(volume)
        name = v.get("name", "?")
        if "hostPath" in v:
            path = dig(v, "hostPath", "path") or "?"
            found.append(f"volume {name} mounts hostPath {path} from the node")
            continue
        kinds = sorted(set(v) - {"name"} - RESTRICTED_VOLUME_TYPES)
        if kinds:
            found.append(f"volume {name} is of type {kinds[0]}, which the restricted profile does not allow")
    return found


# -- kube-linter / kube-score / Polaris ----------------------------------


def check_read_only_root(_: str, spec: Mapping[str, Any]) -> list[str]:
    return [
        f"{label}: securityContext.readOnlyRootFilesystem should be true (emptyDir for scratch paths)"
        for label, c in containers(spec)
        if dig(c, "securityContext", "readOnlyRootFilesystem") is not True
    ]


def check_resources(_: str, spec: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for label, c in containers(spec):
        if label.startswith("ephemeral"):
            continue  # ephemeral containers take no resources
        missing = [
            ".".join(path)
            for path in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))
            if not nonempty(dig(c.get("resources"), *path))
        ]
        if missing:
            found.append(f"{label}: no {', '.join('resources.' + m for m in missing)}")
    return found


def _port(value: Any) -> Any:
    """A port as the engine sends it (numbers as floats), as a plain int."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _probe_port(probe: Mapping[str, Any]) -> Any:
    checks = ("httpGet", "tcpSocket", "grpc")
    return _port(next((dig(probe, c, "port") for c in checks if dig(probe, c, "port") is not None), None))


def check_probes(_: str, spec: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for label, c in containers(spec, init=False):
        ports = {_port(mapping(p).get("containerPort")) for p in items(c.get("ports"))}
        ports |= {mapping(p).get("name") for p in items(c.get("ports"))}
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c or not mapping(c.get(probe)):
                found.append(f"{label}: no {probe}")
                continue
            port = _probe_port(mapping(c.get(probe)))
            if port is not None and port not in ports:
                found.append(f"{label}: {probe} checks port {port}, which the container does not declare")
    return found


def _pinned(images: list[tuple[str, Any]]) -> list[str]:
    found: list[str] = []
    for label, image in images:
        problem = image_pin_problem(image)
        if problem:
            found.append(f"{label}: {problem}")
    return found


def _images(resource_type: str, props: Props) -> list[tuple[str, Any]]:
    """(label, image) of every container of a workload; of a Spark
    application, its image and the driver's and executor's own if given."""
    if is_spark_app(resource_type):
        spec = mapping(props.get("spec"))
        spec = mapping(spec.get("template")) if "template" in spec else spec
        own = [(role, pod.get("image")) for role, pod in spark_pods(props) if "image" in pod]
        return [("application", spec.get("image")), *own]
    return [(label, c.get("image")) for label, c in containers(pod_spec(resource_type, props))]


def check_image_pinned(resource_type: str, props: Props, config: Config) -> list[str]:
    if _excluded(props, config):
        return []
    return _pinned(_images(resource_type, props))


def check_image_digest(resource_type: str, props: Props, config: Config) -> list[str]:
    if _excluded(props, config):
        return []
    found: list[str] = []
    for label, image in _images(resource_type, props):
        if not isinstance(image, str) or not IMAGE_DIGEST_RE.search(image.strip()):
            found.append(
                f"{label}: image {image} has no digest; a tag can be moved to other content, "
                "so give it as name@sha256:<digest>"
            )
    return found


def _env_holders(resource_type: str, props: Props) -> list[tuple[str, Mapping[str, Any]]]:
    if is_spark_app(resource_type):
        return spark_pods(props)
    return containers(pod_spec(resource_type, props))


def check_literal_secrets(resource_type: str, props: Props, config: Config) -> list[str]:
    if _excluded(props, config):
        return []
    found: list[str] = []
    for label, holder in _env_holders(resource_type, props):
        for env in items(holder.get("env")):
            e = mapping(env)
            name, value = str(e.get("name") or ""), e.get("value")
            if is_secret_name(name) and isinstance(value, str) and value and "valueFrom" not in e:
                found.append(
                    f"{label}: env {name} holds a literal value; "
                    "use valueFrom.secretKeyRef or a mounted Secret"
                )
    return unique(found)


def check_default_credentials(resource_type: str, props: Props, config: Config) -> list[str]:
    if _excluded(props, config):
        return []
    found: list[str] = []
    for label, holder in _env_holders(resource_type, props):
        for env in items(holder.get("env")):
            e = mapping(env)
            value = e.get("value")
            if "valueFrom" in e or not isinstance(value, str):
                continue
            problem = default_credential_problem(str(e.get("name") or ""), value)
            if problem:
                found.append(f"{label}: {problem}")
    return unique(found)


def check_service_type(_: str, props: Props, config: Config) -> list[str]:
    kind = str(dig(props, "spec", "type") or "ClusterIP")
    allowed = set(strings(config.get("allowedServiceTypes")))
    if kind in EXPOSED_SERVICE_TYPES and kind not in allowed:
        return [
            f"Service of type {kind} exposes pods outside the cluster; use ClusterIP behind the Ingress, "
            "or list the type in allowedServiceTypes"
        ]
    return []


def _env_or_workload(resource_type: str) -> bool:
    return is_workload(resource_type) or is_spark_app(resource_type)


def _resource_rule(
    name: str,
    description: str,
    enforcement: Enforcement,
    check: Callable[[str, Props, Config], list[str]],
) -> ResourceRule:
    return ResourceRule(name, description, enforcement, _env_or_workload, check, EXCLUDED_NAMESPACES)


RESOURCE_RULES: list[ResourceRule] = [
    _workload_rule(
        "k8s-run-as-non-root",
        "Pods run as a non-root user: runAsNonRoot true, never runAsUser 0 (Pod Security restricted).",
        Enforcement.MANDATORY,
        check_run_as_non_root,
    ),
    _workload_rule(
        "k8s-no-privilege-escalation",
        "Every container sets allowPrivilegeEscalation: false (Pod Security restricted).",
        Enforcement.MANDATORY,
        check_privilege_escalation,
    ),
    _workload_rule(
        "k8s-drop-all-capabilities",
        "Every container drops ALL capabilities and adds none but NET_BIND_SERVICE "
        "(Pod Security restricted).",
        Enforcement.MANDATORY,
        check_capabilities,
    ),
    _workload_rule(
        "k8s-seccomp-runtime-default",
        "Pods or all their containers use the RuntimeDefault (or a Localhost) seccomp profile "
        "(Pod Security restricted).",
        Enforcement.MANDATORY,
        check_seccomp,
    ),
    _workload_rule(
        "k8s-no-privileged",
        "No container runs privileged (Pod Security baseline).",
        Enforcement.MANDATORY,
        check_privileged,
    ),
    _workload_rule(
        "k8s-no-host-namespaces",
        "Pods share no host namespace (hostNetwork, hostPID, hostIPC) and bind no hostPort.",
        Enforcement.MANDATORY,
        check_host_namespaces,
    ),
    _workload_rule(
        "k8s-no-host-path-volumes",
        "Pods mount no hostPath volume, and only the volume types of the restricted profile.",
        Enforcement.MANDATORY,
        check_host_path,
    ),
    _workload_rule(
        "k8s-read-only-root-filesystem",
        "Containers run with a read-only root filesystem (kube-linter, kube-score, Polaris).",
        Enforcement.ADVISORY,
        check_read_only_root,
    ),
    _workload_rule(
        "k8s-resource-requests-and-limits",
        "Every container requests CPU and memory and has a memory limit (kube-score, Polaris).",
        Enforcement.MANDATORY,
        check_resources,
    ),
    _workload_rule(
        "k8s-readiness-and-liveness-probes",
        "Long-running containers have readiness and liveness probes, on ports they declare.",
        Enforcement.ADVISORY,
        check_probes,
        applies=is_long_running,
    ),
    _resource_rule(
        "k8s-image-pinned",
        "Images are pinned to a version tag or a digest: no latest, no untagged image.",
        Enforcement.MANDATORY,
        check_image_pinned,
    ),
    _resource_rule(
        "k8s-image-digest",
        "Images are pinned by digest (name@sha256:...), so every pod runs exactly the image "
        "the stack was previewed with.",
        Enforcement.MANDATORY,
        check_image_digest,
    ),
    _resource_rule(
        "k8s-no-literal-secrets-in-env",
        "No credential-named environment variable (PASSWORD, SECRET, TOKEN, KEY...) holds a literal value; "
        "use valueFrom or a mounted Secret.",
        Enforcement.MANDATORY,
        check_literal_secrets,
    ),
    _resource_rule(
        "k8s-no-default-credentials",
        "No environment variable sets an image's default credential, an empty password "
        "or an auth-off switch.",
        Enforcement.MANDATORY,
        check_default_credentials,
    ),
    ResourceRule(
        "k8s-service-type",
        "Services stay inside the cluster (ClusterIP): LoadBalancer and NodePort only where allowed.",
        Enforcement.ADVISORY,
        _is_kind(SERVICE_KIND),
        check_service_type,
        {
            "allowedServiceTypes": {
                "type": "array",
                "items": {"type": "string", "enum": sorted(EXPOSED_SERVICE_TYPES)},
                "default": [],
                "description": "Service types besides ClusterIP that are allowed.",
            }
        },
    ),
]


# -- stack-wide ----------------------------------------------------------


def _of_kind(resources: Sequence[StackResource], kind: tuple[str, str]) -> list[StackResource]:
    return [r for r in resources if kind_of(r.type) == kind]


def pod_labels(resource: StackResource) -> list[Mapping[str, Any]]:
    """The labels of the pods a resource creates (one set per pod role)."""
    if is_spark_app(resource.type):
        return [mapping(pod.get("labels")) for _, pod in spark_pods(resource.props)]
    template = pod_template(resource.type, resource.props)
    if template is None:
        return []
    return [mapping(dig(template, "metadata", "labels"))]


def check_network_policy_coverage(resources: Sequence[StackResource], config: Config) -> list[Finding]:
    excluded = set(strings(config.get("excludedNamespaces")))
    policies = _of_kind(resources, NETWORK_POLICY_KIND)
    found: list[Finding] = []
    for r in resources:
        if not (is_workload(r.type) or is_spark_app(r.type)):
            continue
        namespace = namespace_of(r.props)
        if namespace in excluded:
            continue
        selectors = [
            dig(p.props, "spec", "podSelector") for p in policies if namespace_of(p.props) == namespace
        ]
        for labels in pod_labels(r):
            if not any(selector_matches(s, labels) for s in selectors if s is not None):
                where = f"namespace {namespace}" if namespace else "its namespace"
                found.append(
                    Finding(f"{r.type} {name_of(r)}: no NetworkPolicy in {where} selects its pods", r.urn)
                )
                break
    return found


def _scaled_deployments(
    resources: Sequence[StackResource], config: Config
) -> list[tuple[StackResource, str, str]]:
    """(deployment, name, namespace) of the configured workloads declared here."""
    wanted = set(strings(config.get("workloads")))
    return [
        (d, name_of(d), namespace_of(d.props))
        for d in _of_kind(resources, DEPLOYMENT_KIND)
        if name_of(d) in wanted
    ]


def check_autoscalers(resources: Sequence[StackResource], config: Config) -> list[Finding]:
    targets = {
        (
            namespace_of(h.props),
            dig(h.props, "spec", "scaleTargetRef", "kind"),
            dig(h.props, "spec", "scaleTargetRef", "name"),
        )
        for h in _of_kind(resources, HPA_KIND)
    }
    found: list[Finding] = []
    for deployment, name, namespace in _scaled_deployments(resources, config):
        if (namespace, "Deployment", name) not in targets:
            found.append(Finding(f"Deployment {name}: no HorizontalPodAutoscaler targets it", deployment.urn))
    return found


def check_disruption_budgets(resources: Sequence[StackResource], config: Config) -> list[Finding]:
    pdbs = _of_kind(resources, PDB_KIND)
    found: list[Finding] = []
    for deployment, name, namespace in _scaled_deployments(resources, config):
        labels = pod_labels(deployment)[0]
        if not any(
            namespace_of(p.props) == namespace and selector_matches(dig(p.props, "spec", "selector"), labels)
            for p in pdbs
            if dig(p.props, "spec", "selector") is not None
        ):
            found.append(
                Finding(f"Deployment {name}: no PodDisruptionBudget selects its pods", deployment.urn)
            )
    found.extend(_blocking_budgets(resources, pdbs))
    return found


def _blocking_budgets(resources: Sequence[StackResource], pdbs: Sequence[StackResource]) -> list[Finding]:
    """Budgets that allow no eviction at all of a Deployment they select: a
    node drain would wait on them forever (``maxUnavailable: 0``, or
    ``minAvailable`` at least the replicas, the HPA's minimum when it owns
    the count)."""
    minimum = {
        (namespace_of(h.props), dig(h.props, "spec", "scaleTargetRef", "name")): dig(
            h.props, "spec", "minReplicas"
        )
        for h in _of_kind(resources, HPA_KIND)
    }
    found: list[Finding] = []
    for pdb in pdbs:
        selector = dig(pdb.props, "spec", "selector")
        if selector is None:
            continue
        for deployment in _of_kind(resources, DEPLOYMENT_KIND):
            namespace, name = namespace_of(deployment.props), name_of(deployment)
            if namespace != namespace_of(pdb.props) or not selector_matches(
                selector, pod_labels(deployment)[0]
            ):
                continue
            replicas = dig(deployment.props, "spec", "replicas")
            if replicas is None:
                replicas = minimum.get((namespace, name)) or 1
            max_unavailable = dig(pdb.props, "spec", "maxUnavailable")
            min_available = dig(pdb.props, "spec", "minAvailable")
            if (
                max_unavailable in (0, "0%")
                or min_available == "100%"
                or (isinstance(min_available, int | float) and min_available >= replicas)
            ):
                found.append(
                    Finding(
                        f"PodDisruptionBudget {name_of(pdb)}: no pod of Deployment {name} "
                        f"({int(replicas)} replicas) may ever be evicted, so every node drain blocks",
                        pdb.urn,
                    )
                )
    return found


def check_service_selectors(resources: Sequence[StackResource], config: Config) -> list[Finding]:
    excluded = set(strings(config.get("excludedNamespaces")))
    pods = [
        (namespace_of(r.props), labels)
        for r in resources
        if is_workload(r.type) or is_spark_app(r.type)
        for labels in pod_labels(r)
    ]
    found: list[Finding] = []
    for service in _of_kind(resources, SERVICE_KIND):
        selector = mapping(dig(service.props, "spec", "selector"))
        namespace = namespace_of(service.props)
        if not selector or namespace in excluded:
            continue  # selector-less Services have their endpoints managed by hand
        if not any(ns == namespace for ns, _ in pods):
            continue  # the stack declares no pod there: they come from elsewhere (a chart not yet rendered)
        if not any(ns == namespace and map_selector_matches(selector, labels) for ns, labels in pods):
            found.append(
                Finding(f"Service {name_of(service)}: its selector matches no declared pod", service.urn)
            )
    return found


SCALED_WORKLOADS: Mapping[str, Mapping[str, Any]] = {
    "workloads": {
        "type": "array",
        "items": {"type": "string"},
        "default": ["gateway", "inference"],
        "description": "Names of the Deployments that must scale and survive disruptions.",
    }
}

STACK_RULES: list[StackRule] = [
    StackRule(
        "k8s-network-policy-coverage",
        "Every pod is selected by a NetworkPolicy in its namespace (a default-deny policy with an empty "
        "podSelector counts).",
        Enforcement.MANDATORY,
        check_network_policy_coverage,
        EXCLUDED_NAMESPACES,
    ),
    StackRule(
        "k8s-horizontal-pod-autoscaler",
        "The scaled workloads (gateway, inference) have a HorizontalPodAutoscaler.",
        Enforcement.ADVISORY,
        check_autoscalers,
        SCALED_WORKLOADS,
    ),
    StackRule(
        "k8s-pod-disruption-budget",
        "The scaled workloads (gateway, inference) have a PodDisruptionBudget; no budget blocks every drain.",
        Enforcement.ADVISORY,
        check_disruption_budgets,
        SCALED_WORKLOADS,
    ),
    StackRule(
        "k8s-service-selects-pods",
        "Every Service with a selector selects pods that the stack declares, where it declares any.",
        Enforcement.ADVISORY,
        check_service_selectors,
        EXCLUDED_NAMESPACES,
    ),
]
