"""The prod stack as declared: Kubernetes objects in one namespace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from dataplatform.charts import tree_sha256
from dataplatform.config import SettingsError
from dataplatform.platform import DataPlatform
from dataplatform.project import PROJECT
from dataplatform.registry import RegistryError
from dataplatform.services.spark.operator import STREAM_RETRY_SECONDS
from dataplatform.services.spark.shared import KNOWN_CHART_DIGESTS, STREAM_NAME
from jobs.conventions import JOB_LABEL
from jobs.launch import job_conf, pod_spec_of
from stack_config import load_settings
from tools.harness import (
    OFFLINE_API_SERVER,
    OfflineSupply,
    Recorder,
    generated_secrets,
    is_secret,
    render_to,
    run_stack,
    stack_config,
    unwrap,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CHART = "kubernetes:helm.sh/v4:Chart"
ENDPOINT_SLICE = "kubernetes:discovery.k8s.io/v1:EndpointSlice"
DNS_EGRESS = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
# What the mocked cluster's default/kubernetes EndpointSlice publishes.
API_SERVER_EGRESS = {
    "to": [{"ipBlock": {"cidr": f"{OFFLINE_API_SERVER}/32"}}],
    "ports": [{"protocol": "TCP", "port": 6443}],
}
SCHEDULED_APP = "kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication"
WORKLOADS = {
    "redis",
    "minio",
    "inference",
    "gateway",
    "prometheus",
    "grafana",
    "alertmanager",
    "spark-history",
}


def deployments(recorder: Recorder) -> dict[str, dict[str, Any]]:
    return {r.name: unwrap(r.inputs) for r in recorder.of_type(DEPLOYMENT)}


def pod_specs(recorder: Recorder) -> dict[str, dict[str, Any]]:
    specs = {n: d["spec"]["template"]["spec"] for n, d in deployments(recorder).items()}
    for r in recorder.of_type("kubernetes:batch/v1:Job"):
        specs[r.name] = unwrap(r.inputs)["spec"]["template"]["spec"]
    return specs


def test_inventory(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    assert set(deployments(recorder)) == WORKLOADS
    assert {r.name for r in recorder.of_type("kubernetes:batch/v1:Job")} == {"minio-init"}
    assert {r.name for r in recorder.of_type("kubernetes:core/v1:PersistentVolumeClaim")} == {
        "redis-data",
        "minio-data",
        "prometheus-data",
        "grafana-data",
        "alertmanager-data",
    }
    assert {r.name for r in recorder.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")} == {
        "gateway",
        "inference",
    }
    # Every long-running workload, single replicas included (none blocks a drain).
    assert {r.name for r in recorder.of_type("kubernetes:policy/v1:PodDisruptionBudget")} == {
        "gateway",
        "inference",
        "redis",
        "minio",
        "prometheus",
        "alertmanager",
        "grafana",
        "spark-history",
    }
    assert len(recorder.of_type("kubernetes:helm.sh/v4:Chart")) == 1
    assert not recorder.of_type("docker:index/container:Container")


def test_namespace_enforces_restricted_pod_security(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    ns = unwrap(recorder.named("kubernetes:core/v1:Namespace", "namespace").inputs)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_pod_meets_the_restricted_profile(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    for name, spec in pod_specs(recorder).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
            assert c["resources"]["limits"]["memory"]
            assert c["imagePullPolicy"] == "IfNotPresent"
            assert not c["image"].endswith(":latest")
        for volume in spec["volumes"]:
            assert "hostPath" not in volume
        assert spec["automountServiceAccountToken"] is False, name


def test_long_running_pods_have_probes_on_declared_ports(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    for name, d in deployments(recorder).items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        ports = {p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert probe in c, (name, probe)
            check = c[probe].get("httpGet") or c[probe].get("tcpSocket")
            if check:
                assert check["port"] in ports, (name, probe)


REGISTRY = "registry.example.com/dataplatform"


def pinned(reference: str) -> str:
    """``reference`` with the digest the tests' offline registry gives it."""
    return f"{reference}@{OfflineSupply().image_digest(reference)}"


def test_every_image_comes_from_the_registry_pinned_by_digest(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    images = {n: [c["image"] for c in s["containers"]] for n, s in pod_specs(recorder).items()}
    minio = pinned(f"{REGISTRY}/minio:0.1.0")
    assert images == {
        "gateway": [pinned(f"{REGISTRY}/gateway:0.1.0")],
        "inference": [pinned(f"{REGISTRY}/inference:0.1.0")],
        "minio": [minio],
        "minio-init": [minio],
        # Third-party defaults name no registry: they come from imageRegistry too.
        "redis": [pinned(f"{REGISTRY}/redis:7.4.5-bookworm")],
        "prometheus": [pinned(f"{REGISTRY}/prom/prometheus:v3.5.0")],
        "alertmanager": [pinned(f"{REGISTRY}/prom/alertmanager:v0.28.1")],
        "grafana": [pinned(f"{REGISTRY}/grafana/grafana:12.2.0")],
        # The History Server runs the Spark image, as the jobs do.
        "spark-history": [pinned(f"{REGISTRY}/spark:0.1.0")],
    }
    for app in recorder.of_type(SCHEDULED_APP):
        assert unwrap(app.inputs)["spec"]["template"]["image"] == pinned(f"{REGISTRY}/spark:0.1.0")
    chart = unwrap(recorder.of_type(CHART)[0].inputs)
    operator = pinned(f"{REGISTRY}/kubeflow/spark-operator/controller:2.5.2")
    assert chart["values"]["image"] == {
        "registry": "registry.example.com",
        "repository": "dataplatform/kubeflow/spark-operator/controller",
        "tag": "2.5.2@" + operator.split("@")[1],
    }
    # No pull secrets unless the stack names them.
    assert not any("imagePullSecrets" in s for s in pod_specs(recorder).values())


def test_images_given_with_a_digest_or_a_registry_of_their_own() -> None:
    digest = "sha256:" + "ab" * 32
    recorder, platform = run_stack(
        "prod",
        {
            "images": {
                "redis": f"mirror.example.com:5000/library/redis:7.4.5@{digest}",
                "prometheus": "prom/prometheus:v3.5.1",
                "gateway": f"{REGISTRY}/gateway:0.1.0@{digest}",
            }
        },
    )
    images = {n: s["containers"][0]["image"] for n, s in pod_specs(recorder).items()}
    # Given with a digest: used as given, nothing asked of the registry.
    assert images["redis"] == f"mirror.example.com:5000/library/redis:7.4.5@{digest}"
    assert images["gateway"] == f"{REGISTRY}/gateway:0.1.0@{digest}"
    # No registry named: under imageRegistry, resolved there.
    assert images["prometheus"] == pinned(f"{REGISTRY}/prom/prometheus:v3.5.1")
    assert platform.settings.image("redis") == images["redis"]


def test_pull_secrets_reach_every_pod_the_operator_and_spark() -> None:
    recorder, _ = run_stack("prod", {"imagePullSecrets": ["regcred", "mirror-cred"]})
    for name, spec in pod_specs(recorder).items():
        assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}], name
    chart = unwrap(recorder.of_type(CHART)[0].inputs)
    assert chart["values"]["image"]["pullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]
    for app in recorder.of_type(SCHEDULED_APP):
        template = unwrap(app.inputs)["spec"]["template"]
        assert template["imagePullSecrets"] == ["regcred", "mirror-cred"]
        # Spark hands them to the pods it creates; CLI jobs take this conf.
        assert template["sparkConf"]["spark.kubernetes.container.image.pullSecrets"] == "regcred,mirror-cred"


class UnreachableFor(OfflineSupply):
    """The offline registry, except that it cannot answer for ``missing``."""

    def __init__(self, *missing: str) -> None:
        self.missing = missing
        self.asked: list[str] = []

    def image_digest(self, reference: str) -> str:
        self.asked.append(reference)
        if any(m in reference for m in self.missing):
            raise RegistryError(f"{reference.split('/', 1)[0]} has no such image (HTTP 404)")
        return super().image_digest(reference)


def test_an_image_that_cannot_be_resolved_fails_before_anything_is_declared() -> None:
    recorder = Recorder()
    with pytest.raises(SettingsError) as raised:
        run_stack("prod", recorder=recorder, supply=UnreachableFor("/gateway:", "/redis:"))
    message = str(raised.value)
    assert message.startswith("cannot pin the prod images to digests:")
    assert (
        "dataplatform:images.gateway: cannot resolve registry.example.com/dataplatform/gateway:0.1.0"
        in message
    )
    assert (
        "dataplatform:images.redis: cannot resolve registry.example.com/dataplatform/redis:7.4.5" in message
    )
    assert "give it with its digest" in message
    assert recorder.resources == []


def test_a_digest_already_given_is_not_asked_for() -> None:
    supply = UnreachableFor()
    digest = "sha256:" + "cd" * 32
    run_stack("prod", {"images": {"gateway": f"{REGISTRY}/gateway:0.1.0@{digest}"}}, supply=supply)
    assert not [r for r in supply.asked if "/gateway:" in r]
    assert f"{REGISTRY}/inference:0.1.0" in supply.asked


def test_gateway_service_maps_80_to_8080(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    svc = unwrap(recorder.named("kubernetes:core/v1:Service", "gateway").inputs)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    inference = unwrap(recorder.named("kubernetes:core/v1:Service", "inference").inputs)
    assert inference["spec"]["ports"][0]["port"] == 3000


def test_ingress_with_tls_from_config(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    ingress = unwrap(recorder.named("kubernetes:networking.k8s.io/v1:Ingress", "gateway").inputs)
    assert ingress["spec"]["tls"] == [
        {"hosts": ["api.dataplatform.example.com"], "secretName": "dataplatform-api-tls"}
    ]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "gateway", "port": {"number": 80}}


def test_no_ingress_without_config() -> None:
    recorder, _ = run_stack("prod", {"gateway": {"replicas": 2}})
    assert not recorder.of_type("kubernetes:networking.k8s.io/v1:Ingress")


def test_secrets_are_referenced_never_inlined(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    secrets = generated_secrets(recorder)
    for name, spec in pod_specs(recorder).items():
        for c in spec["containers"]:
            for env in c.get("env", []):
                assert "value" not in env or not any(s in str(env["value"]) for s in secrets), name
            assert not any(s in " ".join(c.get("args", []) + c.get("command", [])) for s in secrets)
    for r in recorder.of_type("kubernetes:core/v1:ConfigMap"):
        assert not any(s in str(unwrap(r.inputs)) for s in secrets), r.name
    for r in recorder.of_type("kubernetes:core/v1:Secret"):
        assert is_secret(r.inputs["stringData"]), r.name
    gateway = pod_specs(recorder)["gateway"]
    mounted = {v["secret"]["secretName"] for v in gateway["volumes"] if "secret" in v}
    assert mounted == {"gateway-files-0"}


def test_stateful_workloads_use_their_claims_and_recreate(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    for name in ("redis", "minio", "prometheus", "grafana"):
        d = deployments(recorder)[name]
        assert d["spec"]["strategy"] == {"type": "Recreate"}
        assert d["spec"]["replicas"] == 1
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in d["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == [f"{name}-data"]


@pytest.mark.parametrize("purge", [False, True])
def test_claims_survive_destroy_unless_purged(monkeypatch: pytest.MonkeyPatch, purge: bool) -> None:
    seen: list[bool | None] = []
    cls = pulumi_kubernetes.core.v1.PersistentVolumeClaim
    original = cls.__init__

    def capture(self: Any, resource_name: str, *args: Any, **kwargs: Any) -> None:
        opts = kwargs.get("opts")
        seen.append(opts.retain_on_delete if opts else None)
        original(self, resource_name, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", capture)
    run_stack("prod", {"purgeOnDestroy": purge})
    assert len(seen) == 5 and all(value is (not purge) for value in seen)


def test_autoscaling_and_disruption_budgets(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    hpa = unwrap(recorder.named("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "gateway").inputs)
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 8
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
    for name in ("inference", "redis"):
        pdb = unwrap(recorder.named("kubernetes:policy/v1:PodDisruptionBudget", name).inputs)
        assert pdb["spec"] == {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        }
    # The HPA owns the replica count.
    assert "replicas" not in deployments(recorder)["gateway"]["spec"]


def policies(recorder: Recorder) -> dict[str, dict[str, Any]]:
    return {
        r.name: unwrap(r.inputs)["spec"]
        for r in recorder.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }


def test_network_policies_default_deny_then_declared_flows(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    ps = policies(recorder)
    assert ps["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # Every workload is covered by a policy of its own.
    assert WORKLOADS | {"minio-init", "spark-pods"} <= set(ps)

    def callers(target: str) -> set[str]:
        names: set[str] = set()
        for rule in ps[target]["ingress"]:
            for peer in rule.get("from", []):
                for expr in peer.get("podSelector", {}).get("matchExpressions", []):
                    names.update(expr["values"])
        return names

    assert callers("redis") == {"gateway", "inference"}
    assert callers("inference") == {"gateway", "prometheus"}
    assert callers("minio") == {"inference", "minio-init", "prometheus", "spark-history"}
    assert callers("prometheus") == {"grafana"}
    assert callers("gateway") == {"prometheus"}
    # Spark pods, in the jobs namespace, reach MinIO and Redis.
    spark_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dataplatform-jobs"}},
        "podSelector": {"matchLabels": {"dataplatform.io/spark-app": "true"}},
    }
    assert any(spark_peer in rule.get("from", []) for rule in ps["minio"]["ingress"])
    assert any(spark_peer in rule.get("from", []) for rule in ps["redis"]["ingress"])
    # Callers get the ports they use: MinIO's S3 port, never its console.
    assert [rule["ports"] for rule in ps["minio"]["ingress"]] == [[{"protocol": "TCP", "port": 9000}]]
    # Nothing takes traffic from any source but, in the operator's namespace,
    # its webhook (the API server calls it). The gateway takes it from the
    # ingress controller's namespace (and monitoring, above).
    open_to_all = {n for n, p in ps.items() if any("from" not in rule for rule in p.get("ingress") or [])}
    assert open_to_all == {"spark-operator-pods"}
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    assert {"from": [controller], "ports": [{"protocol": "TCP", "port": 8080}]} in ps["gateway"]["ingress"]
    # DNS goes to the cluster's DNS pods only, the API server to its own
    # address and port only, as the cluster publishes them.
    assert all(p["egress"][0] == DNS_EGRESS for p in ps.values() if p.get("egress"))
    assert API_SERVER_EGRESS in ps["spark-pods"]["egress"]
    [read] = recorder.of_type(ENDPOINT_SLICE)
    assert read.inputs == {}
    # Egress: gateway to inference on 3000 only (plus DNS).
    gateway_egress = ps["gateway"]["egress"]
    to_inference = next(
        r
        for r in gateway_egress
        if r.get("to") == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "inference"}}}]
    )
    assert to_inference["ports"] == [{"protocol": "TCP", "port": 3000}]


def test_the_operators_namespace_is_closed_but_for_its_webhook_and_the_api_server(
    prod: tuple[Recorder, DataPlatform],
) -> None:
    recorder, _ = prod
    by_name = {
        r.name: unwrap(r.inputs) for r in recorder.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    deny, pods = by_name["spark-operator-default-deny"], by_name["spark-operator-pods"]
    assert deny["metadata"]["namespace"] == pods["metadata"]["namespace"] == "spark-operator"
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # Connections in: the webhook's port only, the one the chart is told to use.
    assert pods["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9443}]}]
    chart = unwrap(recorder.of_type(CHART)[0].inputs)
    assert chart["values"]["webhook"]["port"] == 9443
    # Out: the cluster's DNS pods, and the API server at the address and
    # port the cluster publishes for it.
    assert pods["spec"]["egress"] == [DNS_EGRESS, API_SERVER_EGRESS]


def test_the_history_server_reads_event_logs_only_and_is_not_exposed(
    prod: tuple[Recorder, DataPlatform],
) -> None:
    recorder, _ = prod
    container = pod_specs(recorder)["spark-history"]["containers"][0]
    assert container["command"] == ["spark-class", "org.apache.spark.deploy.history.HistoryServer"]
    # Its whole configuration, the key included, is a mounted secret file.
    assert container["args"] == ["--properties-file", "/run/secrets/spark-history.conf"]
    service = unwrap(recorder.named("kubernetes:core/v1:Service", "spark-history").inputs)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 18080
    assert not any(
        "spark-history" in str(unwrap(r.inputs))
        for r in recorder.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    )
    # Its MinIO user may read the events bucket and nothing else.
    configmaps = [
        unwrap(r.inputs).get("data") or {} for r in recorder.of_type("kubernetes:core/v1:ConfigMap")
    ]
    policy = next(
        json.loads(data["spark-history.json"]) for data in configmaps if "spark-history.json" in data
    )
    [statement] = policy["Statement"]
    assert statement["Resource"] == ["arn:aws:s3:::spark-events", "arn:aws:s3:::spark-events/*"]
    assert statement["Action"] == ["s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket"]


def test_spark_operator_and_jobs(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    chart = unwrap(recorder.of_type(CHART)[0].inputs)
    # The chart repository's 2.5.2 archive, checked against its known sha256
    # and installed from the checked copy.
    assert (
        chart["chart"]
        == f"/offline/charts/spark-operator-2.5.2-sha256-{KNOWN_CHART_DIGESTS['2.5.2', 'archive']}.tgz"
    )
    assert "repositoryOpts" not in chart
    assert chart["values"]["webhook"]["enable"] is True
    # It watches the jobs namespace, not the services'.
    assert chart["values"]["spark"]["jobNamespaces"] == ["dataplatform-jobs"]
    # Least privilege: executor pods and their ConfigMap, nothing else.
    role = unwrap(recorder.named("kubernetes:rbac.authorization.k8s.io/v1:Role", "spark-driver").inputs)
    granted = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert ("pods", "create") in granted and ("configmaps", "create") in granted
    assert not {res for res, _ in granted} - {"pods", "configmaps"}
    assert not {verb for _, verb in granted} & {"patch", "update", "escalate", "bind"}
    # The driver talks to the API server, so its account mounts a token.
    account = unwrap(recorder.named("kubernetes:core/v1:ServiceAccount", "spark-driver").inputs)
    assert account["automountServiceAccountToken"] is True
    operator_ns = unwrap(recorder.named("kubernetes:core/v1:Namespace", "spark-operator-namespace").inputs)
    assert operator_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    apps = {
        r.name: unwrap(r.inputs)
        for r in recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication")
    }
    assert set(apps) == {"features-nightly", "train-nightly", "lake-vacuum"}
    vacuum = apps["lake-vacuum"]["spec"]
    assert vacuum["template"]["arguments"] == ["vacuum", "--retention-hours", "168"]
    spec = apps["features-nightly"]["spec"]
    assert spec["schedule"] == "0 2 * * *" and spec["concurrencyPolicy"] == "Forbid"
    app = spec["template"]
    assert app["mainApplicationFile"] == "local:///opt/dataplatform/jobs/run.py"
    assert app["arguments"] == ["features"]
    assert app["dynamicAllocation"] == {
        "enabled": True,
        "initialExecutors": 1,
        "minExecutors": 1,
        "maxExecutors": 10,
        "shuffleTrackingEnabled": True,
    }
    assert app["driver"]["serviceAccount"] == "spark-driver"
    assert app["executor"]["memory"] == "4096m" and app["executor"]["cores"] == 2
    assert app["restartPolicy"]["type"] == "OnFailure"
    assert app["sparkConf"]["spark.ui.prometheus.enabled"] == "true"
    assert app["driver"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert app["volumes"][0]["secret"]["secretName"] == "spark-credentials"


def test_jobs_run_in_a_namespace_of_their_own_with_only_their_secret(
    prod: tuple[Recorder, DataPlatform],
) -> None:
    recorder, _ = prod
    jobs = unwrap(recorder.named("kubernetes:core/v1:Namespace", "jobs-namespace").inputs)
    assert jobs["metadata"]["name"] == "dataplatform-jobs"
    assert jobs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    in_jobs = {
        (r.typ.rsplit(":", 1)[-1], r.name)
        for r in recorder.resources
        if (unwrap(r.inputs).get("metadata") or {}).get("namespace") == "dataplatform-jobs"
    }
    # The only Secret there is the jobs' own credentials.
    assert {name for kind, name in in_jobs if kind == "Secret"} == {"spark-credentials"}
    assert {name for kind, name in in_jobs if kind == "ScheduledSparkApplication"} == {
        "features-nightly",
        "train-nightly",
        "lake-vacuum",
    }
    assert {("ServiceAccount", "spark-driver"), ("ServiceAccount", "spark-executor")} <= in_jobs
    assert {("NetworkPolicy", "jobs-default-deny"), ("NetworkPolicy", "spark-pods")} <= in_jobs
    # Executors run as an account with no token and no role.
    executor = unwrap(recorder.named("kubernetes:core/v1:ServiceAccount", "spark-executor").inputs)
    assert executor["automountServiceAccountToken"] is False
    roles = {r.name for r in recorder.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")}
    assert "spark-executor" not in roles
    apps = recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication")
    assert {unwrap(a.inputs)["spec"]["template"]["executor"]["serviceAccount"] for a in apps} == {
        "spark-executor"
    }
    # The jobs reach the services by names that resolve from their namespace.
    env = unwrap(apps[0].inputs)["spec"]["template"]["driver"]["env"]
    values = {e["name"]: e["value"] for e in env}
    assert values["DP_S3_ENDPOINT"] == "http://minio.dataplatform.svc:9000"
    assert values["DP_REDIS_HOST"] == "redis.dataplatform.svc"


def test_drivers_may_create_only_their_own_executors(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    policy = unwrap(
        recorder.named(
            "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy", "spark-executors"
        ).inputs
    )
    assert policy["metadata"]["name"] == "dataplatform-jobs-spark-executors"
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConditions"] == [
        {
            "name": "made-by-the-account",
            "expression": "request.userInfo.username == "
            "'system:serviceaccount:dataplatform-jobs:spark-driver'",
        }
    ]
    rules = {v["message"]: v["expression"] for v in policy["spec"]["validations"]}
    expressions = " ".join(rules.values())
    for needle in (
        "object.metadata.labels['spark-role'] == 'executor'",
        "object.metadata.labels['dataplatform.io/spark-app'] == 'true'",
        "!('app.kubernetes.io/name' in object.metadata.labels)",
        "request.userInfo.extra['authentication.kubernetes.io/pod-name'][0]",
        "object.spec.serviceAccountName == 'spark-executor'",
        "v.secret.secretName == 'spark-credentials'",
    ):
        assert needle in expressions, needle
    # The Spark image, pinned by digest, is the only one allowed.
    [images] = [e for e in rules.values() if "c.image in" in e]
    assert "['registry.example.com/dataplatform/spark:" in images and "@sha256:" in images
    binding = unwrap(
        recorder.named(
            "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding",
            "spark-executors-binding",
        ).inputs
    )
    assert binding["spec"] == {
        "policyName": "dataplatform-jobs-spark-executors",
        "validationActions": ["Deny"],
        "matchResources": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dataplatform-jobs"}}
        },
    }


@pytest.mark.parametrize(
    ("kubernetes", "message"),
    [
        ({"jobsNamespace": "dataplatform"}, "must differ from namespace"),
        ({"jobsNamespace": "Jobs"}, "must be a DNS label"),
    ],
)
def test_a_jobs_namespace_that_is_no_namespace_of_its_own_fails(
    kubernetes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=rf"dataplatform:kubernetes\.jobsNamespace: .*{message}"):
        run_stack("prod", {"kubernetes": kubernetes})


def test_unscheduled_job_is_a_spark_application() -> None:
    recorder, _ = run_stack("prod", {"sparkJobs": [{"name": "counts", "job": "event_counts", "args": ["a"]}]})
    apps = recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication")
    assert sorted(a.name for a in apps) == sorted(["counts", STREAM_NAME])


def test_the_stream_is_a_spark_application_the_operator_restarts() -> None:
    recorder, _ = run_stack("prod", {"spark": {"streaming": {"triggerSeconds": 2, "restarts": 30}}})
    (app,) = [
        a
        for a in recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication")
        if a.name == STREAM_NAME
    ]
    spec = app.inputs["spec"]
    assert spec["arguments"] == [
        "features_stream",
        "--trigger-seconds",
        "2",
        "--max-files-per-trigger",
        "100",
    ]
    assert spec["restartPolicy"] == {
        "type": "OnFailure",
        "onFailureRetries": 30,
        "onFailureRetryInterval": STREAM_RETRY_SECONDS,
        "onSubmissionFailureRetries": 30,
        "onSubmissionFailureRetryInterval": STREAM_RETRY_SECONDS,
    }
    # The same sizes as every other job of the stack; the settings of its own
    # (idle executors released) on top of the stack's.
    nightly = next(
        a
        for a in recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication")
        if a.name == "features-nightly"
    )
    stream, batch = pod_spec_of(app.inputs), pod_spec_of(nightly.inputs)
    assert stream["sparkConf"] == {**batch["sparkConf"], **job_conf("features_stream")}
    assert job_conf("features_stream")["spark.dynamicAllocation.executorIdleTimeout"] == "30s"
    assert {k: v for k, v in stream.items() if k != "sparkConf"} == {
        k: v for k, v in batch.items() if k != "sparkConf"
    }
    assert app.inputs["metadata"]["labels"][JOB_LABEL] == "features_stream"


def test_the_stream_can_be_turned_off_and_its_name_is_taken() -> None:
    recorder, _ = run_stack("prod", {"spark": {"streaming": {"enabled": False}}})
    apps = recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication")
    assert STREAM_NAME not in [a.name for a in apps]
    with pytest.raises(
        SettingsError, match=rf"dataplatform:sparkJobs: {STREAM_NAME} is the name of the streaming job"
    ):
        run_stack("prod", {"sparkJobs": [{"name": STREAM_NAME, "job": "features"}]})
    with pytest.raises(
        SettingsError, match=r"dataplatform:spark\.streaming\.triggerSeconds: .*greater than or equal to 0\.5"
    ):
        run_stack("prod", {"spark": {"streaming": {"triggerSeconds": 0}}})


def test_render_mode_is_a_provider_setting() -> None:
    recorder, _ = run_stack("prod", render_to("/tmp/rendered"))
    provider = unwrap(recorder.of_type("pulumi:providers:kubernetes")[0].inputs)
    assert provider["renderYamlToDirectory"] == "/tmp/rendered"
    # A render reads nothing from a cluster.
    assert not recorder.of_type(ENDPOINT_SLICE)


def test_a_render_without_the_api_servers_address_fails_naming_the_setting() -> None:
    with pytest.raises(SettingsError) as raised:
        run_stack("prod", {"kubernetes": {"renderDir": "/tmp/rendered"}})
    [line] = [line.strip() for line in str(raised.value).splitlines()[1:]]
    assert line.startswith(
        "dataplatform:kubernetes.apiServerCidrs: rendering to a directory reads no cluster"
    )


def test_a_job_from_the_cli_gets_the_pod_spec_of_the_stack_s_own_job() -> None:
    """One builder (jobs.launch): the CLI's SparkApplication for a job equals
    the one the stack declares for it in everything that shapes its pods."""
    from jobs import stack_outputs, submit_prod
    from jobs.launch import pod_spec_of

    overrides = {"sparkJobs": [{"name": "dp-features", "job": "features", "args": ["--ttl-seconds", "3600"]}]}
    config = {**stack_config("prod"), **overrides}
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack="prod", preview=False)
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    )
    outputs: dict[str, Any] = {}

    def program() -> None:
        platform = DataPlatform(PROJECT, settings=load_settings())
        pulumi.Output.from_input(platform.outputs["spark_submit"]).apply(outputs.update)

    _sync_await(run_pulumi_func(program))
    declared = unwrap(
        recorder.named("kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication", "dp-features").inputs
    )
    target = stack_outputs.StackTarget.from_outputs(
        {
            "spark_submit": outputs,
            "platform_credentials": {"s3_access_key": "a", "s3_secret_key": "s", "redis_password": "r"},
        },
        "prod",
    )
    assert outputs["secret_name"] == "spark-credentials"
    cli = submit_prod.application(
        "features", ["--keep", "3"], target, secret_name=outputs["secret_name"], run_id="r1"
    )
    stack_pods, cli_pods = pod_spec_of(declared), pod_spec_of(cli)
    # The CLI adds a component label and the run id; everything else is equal.
    for pods in (stack_pods, cli_pods):
        for role in ("driver", "executor"):
            pods[role]["labels"].pop("app.kubernetes.io/component", None)
            pods[role].pop("annotations", None)
    assert cli_pods == stack_pods
    assert cli["spec"]["driver"]["labels"]["dataplatform.io/spark-app"] == "true"


def test_the_operator_chart_from_a_local_directory_with_its_image(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: spark-operator\nversion: 2.5.2\n")
    recorder, _ = run_stack(
        "prod",
        {
            "sparkOperator": {
                "chartPath": str(tmp_path),
                "chartSha256": tree_sha256(tmp_path),
                "image": "127.0.0.1:5000/dataplatform/spark-operator:2.5.2",
            }
        },
    )
    chart = unwrap(recorder.of_type(CHART)[0].inputs)
    assert chart["chart"] == str(tmp_path)
    assert "repositoryOpts" not in chart and "version" not in chart
    digest = OfflineSupply().image_digest("127.0.0.1:5000/dataplatform/spark-operator:2.5.2")
    assert chart["values"]["image"] == {
        "registry": "127.0.0.1:5000",
        "repository": "dataplatform/spark-operator",
        "tag": f"2.5.2@{digest}",
    }


def test_a_local_chart_that_does_not_match_fails_before_anything_is_declared(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: spark-operator\nversion: 2.5.2\n")
    recorder = Recorder()
    with pytest.raises(SettingsError) as raised:
        run_stack("prod", {"sparkOperator": {"chartPath": str(tmp_path)}}, recorder=recorder)
    known, actual = KNOWN_CHART_DIGESTS["2.5.2", "directory"], tree_sha256(tmp_path)
    assert str(raised.value) == (
        f"dataplatform:sparkOperator.chartSha256: the chart spark-operator 2.5.2 from {tmp_path} does not "
        f"match: expected sha256:{known}, got sha256:{actual}; nothing was deployed. Use the chart that "
        "digest names, or set chartSha256 to the digest of a chart you trust"
    )
    assert recorder.resources == []


def test_an_oci_chart_needs_its_digest_and_is_installed_from_the_checked_archive() -> None:
    oci = {"chartRepo": "oci://ghcr.io/kubeflow/helm-charts"}
    with pytest.raises(
        SettingsError, match=r"dataplatform:sparkOperator.chartSha256: is required: no sha256 "
    ):
        run_stack("prod", {"sparkOperator": oci})
    digest = "ef" * 32
    recorder, _ = run_stack("prod", {"sparkOperator": {**oci, "chartSha256": f"sha256:{digest}"}})
    chart = unwrap(recorder.of_type(CHART)[0].inputs)
    assert chart["chart"] == f"/offline/charts/spark-operator-2.5.2-sha256-{digest}.tgz"


def test_a_local_chart_of_another_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: spark-operator\nversion: 2.3.0\n")
    with pytest.raises(
        Exception,
        match=r"sparkOperator.chartPath: the chart in .* is version 2.3.0, but chartVersion is 2.5.2",
    ):
        run_stack("prod", {"sparkOperator": {"chartPath": str(tmp_path)}})


@pytest.mark.parametrize("purge", [False, True])
def test_destroy_keeps_the_namespace_holding_retained_claims(
    monkeypatch: pytest.MonkeyPatch, purge: bool
) -> None:
    seen: dict[str, bool | None] = {}
    cls = pulumi_kubernetes.core.v1.Namespace
    original = cls.__init__

    def capture(self: Any, resource_name: str, *args: Any, **kwargs: Any) -> None:
        opts = kwargs.get("opts")
        seen[resource_name] = opts.retain_on_delete if opts else None
        original(self, resource_name, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", capture)
    run_stack("prod", {"purgeOnDestroy": purge})
    # Deleting a namespace deletes its PVCs, retained or not.
    assert seen["dataplatform-namespace"] is (not purge)


def test_readiness_and_liveness_are_different_checks() -> None:
    """Wherever the image tells ready from alive; Grafana's offers only
    ``/api/health``, Redis only PING."""

    def check(probe: dict[str, Any]) -> str:
        if "httpGet" in probe:
            return str(probe["httpGet"]["path"])
        return " ".join(probe["exec"]["command"])

    recorder, _ = run_stack("prod")
    expected = {
        "gateway": ("/readyz", "/healthz"),
        "inference": ("/readyz", "/healthz"),
        "minio": ("/minio/health/ready", "/minio/health/live"),
        "prometheus": ("/-/ready", "/-/healthy"),
        "alertmanager": ("/-/ready", "/-/healthy"),
        "grafana": ("/api/health", "/api/health"),
    }
    for name, (ready, alive) in expected.items():
        deployment = unwrap(recorder.named("kubernetes:apps/v1:Deployment", name).inputs)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert (check(container["readinessProbe"]), check(container["livenessProbe"])) == (ready, alive)
    # Redis: PING serves both (see services/redis.py).
    redis = unwrap(recorder.named("kubernetes:apps/v1:Deployment", "redis").inputs)
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert check(container["readinessProbe"]) == check(container["livenessProbe"])


def test_file_contents_roll_the_pods_and_a_rotation_renews_the_key() -> None:
    def gateway(overrides: dict[str, Any]) -> tuple[str, Any]:
        recorder, _ = run_stack("prod", overrides)
        deployment = unwrap(recorder.named("kubernetes:apps/v1:Deployment", "gateway").inputs)
        password = unwrap(
            recorder.named("random:index/randomPassword:RandomPassword", "gateway-api-key").inputs
        )
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations["dataplatform.io/files-sha256"], password.get("keepers")

    digest, keepers = gateway({})
    assert len(digest) == 64 and keepers is None
    # Raising apiKeyRotation makes the provider generate a new key; the key
    # file's digest on the pod template then changes and the pods roll.
    _, keepers = gateway({"gateway": {"apiKeyRotation": 1}})
    assert keepers == {"rotation": "1"}


def test_a_files_digest_follows_every_file() -> None:
    from dataplatform.targets.kubernetes import _files_digest
    from dataplatform.workload import File

    def value(*files: File) -> str:
        return str(_sync_await(_files_digest(files).future()))

    a = File("/etc/x/a", "one")
    assert value(a) == value(File("/etc/x/a", "one"))
    assert value(a) != value(File("/etc/x/a", "two"))
    assert value(a) != value(File("/etc/x/b", "one"))


def test_ingress_routes_only_the_public_api_and_spark_reaches_only_the_api_server() -> None:
    recorder, _ = run_stack(
        "prod",
        {
            "gateway": {"ingress": {"host": "api.example.com", "className": "traefik"}},
            "kubernetes": {"apiServerCidrs": ["10.250.0.1/32"]},
        },
    )
    ingress = unwrap(recorder.named("kubernetes:networking.k8s.io/v1:Ingress", "gateway").inputs)
    assert [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]] == ["/v1"]
    policy = unwrap(recorder.named("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spark-pods").inputs)
    to_api = [r for r in policy["spec"]["egress"] if any(p["port"] == 6443 for p in r.get("ports", []))]
    assert to_api == [
        {
            "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
            "to": [{"ipBlock": {"cidr": "10.250.0.1/32"}}],
        }
    ]


def test_an_operator_image_pinned_by_digest_keeps_its_digest() -> None:
    from dataplatform.services.spark.operator import image_values

    digest = "sha256:" + "a" * 64
    assert image_values(f"127.0.0.1:5000/dataplatform/spark-operator:2.5.2@{digest}") == {
        "registry": "127.0.0.1:5000",
        "repository": "dataplatform/spark-operator",
        "tag": f"2.5.2@{digest}",
    }


INGRESS = {"host": "api.example.test", "className": "nginx", "tlsSecretName": "api-tls"}


def _gateway_env(recorder: Recorder) -> dict[str, str]:
    deployment = unwrap(recorder.named(DEPLOYMENT, "gateway").inputs)
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_the_ingress_certificate_given_as_pem_becomes_a_tls_secret_of_the_platform() -> None:
    pem = {
        "tlsCertificate": "-----BEGIN CERTIFICATE-----\n",
        "tlsPrivateKey": "-----BEGIN PRIVATE KEY-----\n",
    }
    recorder, _ = run_stack("prod", {"gateway": {"ingress": {**INGRESS, **pem}}})
    made = recorder.named("kubernetes:core/v1:Secret", "gateway-tls")
    assert is_secret(made.inputs["stringData"])
    secret = unwrap(made.inputs)
    assert secret["type"] == "kubernetes.io/tls" and secret["metadata"]["name"] == "api-tls"
    assert secret["stringData"]["tls.crt"] == pem["tlsCertificate"]
    ingress = unwrap(recorder.named("kubernetes:networking.k8s.io/v1:Ingress", "gateway").inputs)
    assert ingress["spec"]["tls"] == [{"hosts": ["api.example.test"], "secretName": "api-tls"}]
    # Plain HTTP through the Ingress is redirected by the gateway itself.
    assert _gateway_env(recorder)["GATEWAY_HTTPS_REDIRECT"] == "true"


def test_the_ingress_certificate_from_an_issuer_is_a_cert_manager_certificate() -> None:
    recorder, _ = run_stack("prod", {"gateway": {"ingress": {**INGRESS, "tlsIssuer": "letsencrypt"}}})
    [certificate] = [
        unwrap(r.inputs)
        for r in recorder.resources
        if r.typ == "kubernetes:cert-manager.io/v1:Certificate" and r.name == "gateway-tls"
    ]
    assert certificate["spec"]["secretName"] == "api-tls"
    assert certificate["spec"]["dnsNames"] == ["api.example.test"]
    assert certificate["spec"]["issuerRef"] == {
        "name": "letsencrypt",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert not [r for r in recorder.of_type("kubernetes:core/v1:Secret") if r.name == "gateway-tls"]


def test_without_tls_nothing_is_redirected_and_a_load_balancer_admits_any_source() -> None:
    recorder, _ = run_stack("prod", {"gateway": {"ingress": None, "serviceType": "LoadBalancer"}})
    assert "GATEWAY_HTTPS_REDIRECT" not in _gateway_env(recorder)
    assert {"ports": [{"protocol": "TCP", "port": 8080}]} in policies(recorder)["gateway"]["ingress"]
    # ClusterIP with no Ingress: monitoring and the namespaces named only.
    recorder, _ = run_stack("prod", {"gateway": {"ingress": None, "clientNamespaces": ["apps"]}})
    ingress = policies(recorder)["gateway"]["ingress"]
    assert all("from" in rule for rule in ingress)
    apps = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}
    assert {"from": [apps], "ports": [{"protocol": "TCP", "port": 8080}]} in ingress


@pytest.mark.parametrize(
    ("ingress", "key"),
    [
        ({**INGRESS, "tlsCertificate": "pem"}, "tlsPrivateKey"),
        ({**INGRESS, "tlsIssuer": "x", "tlsCertificate": "pem", "tlsPrivateKey": "pem"}, "tlsIssuer"),
        ({"host": "api.example.test", "tlsIssuer": "x"}, "tlsSecretName"),
    ],
)
def test_contradictory_tls_settings_fail_naming_the_key(ingress: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError, match=rf"dataplatform:gateway\.ingress\.{key}: "):
        run_stack("prod", {"gateway": {"ingress": ingress}})


def test_scaled_workloads_drain_before_they_stop(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    for name in ("gateway", "inference"):
        container = unwrap(recorder.named(DEPLOYMENT, name).inputs)["spec"]["template"]["spec"]["containers"][
            0
        ]
        assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}, name
    # A single replica has no peer to take its traffic meanwhile.
    redis = unwrap(recorder.named(DEPLOYMENT, "redis").inputs)["spec"]["template"]["spec"]["containers"][0]
    assert "lifecycle" not in redis
