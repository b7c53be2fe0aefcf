"""The prod tier's cluster API beyond workloads: what a ``ClusterTarget`` offers the services.

Helm charts, and for pods the target did not create (the Spark Operator's
drivers and executors) a namespace of their own, the jobs namespace, with
custom resources, service accounts bound to their roles, Secrets, network
access, and an admission policy on the pods one account may create.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform.targets.base import ChartSpec, Manifest, PodAdmission, PodFlows, RoleRules
from dataplatform.targets.namespace import PSA_RESTRICTED, SKIP_AWAIT, PlatformNamespace, namespace_selector
from dataplatform.targets.network_policy import NetworkPolicies
from dataplatform.workload import File
from jobs.conventions import PART_OF


class ClusterExtensions:
    """The ``ClusterTarget`` methods: charts get namespaces of their own, the
    rest is declared into ``jobs``; flows go to ``policies``."""

    def __init__(
        self, namespace: PlatformNamespace, jobs: PlatformNamespace, policies: NetworkPolicies
    ) -> None:
        self._namespace = namespace
        self._jobs = jobs
        self._policies = policies
        self.jobs_namespace = jobs.name

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
            spec.name, spec.namespace, namespace.metadata.name, spec.ingress_ports, parent, [namespace]
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
            opts=pulumi.ResourceOptions(
                parent=parent,
                provider=provider,
                depends_on=[namespace],
                transforms=[_services_unawaited],
            ),
        )

    def service_account(
        self, name: str, rules: RoleRules, parent: pulumi.Resource, mount_token: bool = False
    ) -> pulumi.Resource:
        ns = self._jobs
        account = k8s.core.v1.ServiceAccount(
            ns.names.of(name),
            metadata=ns.meta(name),
            automount_service_account_token=mount_token,
            opts=ns.opts(parent),
        )
        if not rules:
            return account
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
        # Always the jobs namespace, whatever the manifest says.
        metadata["namespace"] = self._jobs.name
        return k8s.apiextensions.CustomResource(
            self._jobs.names.of(name),
            api_version=api_version,
            kind=kind,
            metadata=metadata,
            spec=body.get("spec"),
            opts=self._jobs.opts(parent, depends_on=depends_on),
        )

    def secret_volume(
        self, name: str, files: tuple[File, ...], parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        secret = k8s.core.v1.Secret(
            self._jobs.names.of(name),
            metadata=self._jobs.meta(name),
            type="Opaque",
            string_data={f.filename: f.content for f in files},
            opts=self._jobs.opts(parent),
        )
        return secret.metadata.name

    def allow_flows(self, name: str, flows: PodFlows, parent: pulumi.Resource) -> None:
        self._policies.allow_pods(name, flows, parent)

    def admit_pods(self, name: str, admission: PodAdmission, parent: pulumi.Resource) -> pulumi.Resource:
        """A ValidatingAdmissionPolicy (in the API server, no webhook) and its
        binding to the jobs namespace. Both are cluster-wide objects, so
        their names carry the jobs namespace's."""
        jobs = self._jobs.name
        policy_name = f"{jobs}-{name}"
        creator = f"system:serviceaccount:{jobs}:{admission.creator}"
        validations = pulumi.Output.all(images=list(admission.images), secret=admission.secret).apply(
            lambda v: pod_admission_rules(admission, list(v["images"]), str(v["secret"]))
        )
        opts = pulumi.ResourceOptions(parent=parent, provider=self._jobs.provider)
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            self._jobs.names.of(name),
            metadata={"name": policy_name, "labels": dict(PART_OF)},
            spec={
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "matchConditions": [
                    {"name": "made-by-the-account", "expression": f"request.userInfo.username == {creator!r}"}
                ],
                "validations": validations,
            },
            opts=opts,
        )
        return k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            self._jobs.names.of(f"{name}-binding"),
            metadata={"name": policy_name, "labels": dict(PART_OF)},
            spec={
                "policyName": policy_name,
                "validationActions": ["Deny"],
                "matchResources": namespace_selector(jobs),
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[policy])),
        )


POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"


def _cel_list(values: list[str]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def pod_admission_rules(admission: PodAdmission, images: list[str], secret: str) -> list[dict[str, str]]:
    """The CEL rules of ``admission``, each with the message a refused
    request gets. Strings are quoted by ``repr``: CEL reads Python's single-
    quoted literals, and no value here holds a quote or a backslash."""
    who = f"{admission.creator} may only create"
    labels = " && ".join(
        f"{key!r} in object.metadata.labels && object.metadata.labels[{key!r}] == {value!r}"
        for key, value in sorted(admission.labels.items())
    )
    forbidden = " && ".join(f"!({key!r} in object.metadata.labels)" for key in admission.forbidden_label_keys)
    allowed = _cel_list(images)
    return [
        {
            "expression": f"has(object.metadata.labels) && {labels}",
            "message": f"{who} pods labelled {admission.labels}",
        },
        *(
            [
                {
                    "expression": f"!has(object.metadata.labels) || ({forbidden})",
                    "message": f"{who} pods without the labels {list(admission.forbidden_label_keys)} "
                    "(a service's label would make a pod pass for it)",
                }
            ]
            if forbidden
            else []
        ),
        {
            "expression": f"has(request.userInfo.extra) && {POD_NAME_EXTRA!r} in request.userInfo.extra && "
            "has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(o, "
            f"o.kind == 'Pod' && o.name == request.userInfo.extra[{POD_NAME_EXTRA!r}][0])",
            "message": f"{who} pods owned by the pod that asks (its own application's executors)",
        },
        {
            "expression": "has(object.spec.serviceAccountName) && "
            f"object.spec.serviceAccountName == {admission.account!r}",
            "message": f"{who} pods running as {admission.account}",
        },
        {
            "expression": f"object.spec.containers.all(c, c.image in {allowed}) && "
            f"(!has(object.spec.initContainers) || object.spec.initContainers.all(c, c.image in {allowed}))",
            "message": f"{who} pods of the image(s) {images}",
        },
        {
            "expression": "!has(object.spec.volumes) || object.spec.volumes.all(v, has(v.emptyDir) || "
            f"has(v.configMap) || (has(v.secret) && v.secret.secretName == {secret!r}))",
            "message": f"{who} pods whose volumes are emptyDir, ConfigMaps and the Secret {secret}",
        },
    ]


def _services_unawaited(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """A chart's Services created without the provider's wait for their
    endpoints. The chart's Deployments are still awaited ready, so what
    depends on the chart (the jobs, on the operator's webhook) still finds
    its pods serving; the Service's own wait added about 10 s after them
    to every first up."""
    given = args.props.get("metadata")
    if args.type_ != "kubernetes:core/v1:Service" or not isinstance(given, dict):
        return None
    metadata = dict(given)
    annotations = metadata.get("annotations")
    metadata["annotations"] = {**(annotations if isinstance(annotations, dict) else {}), SKIP_AWAIT: "true"}
    return pulumi.ResourceTransformResult({**args.props, "metadata": metadata}, args.opts)
