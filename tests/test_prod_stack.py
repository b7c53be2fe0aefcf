"""The prod stack as declared: Kubernetes objects in one namespace."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.platform import Platform
from infra.project import PROJECT
from infra.settings import load_settings
from tools.harness import Recorder, generated_secrets, is_secret, run_stack, stack_config, unwrap

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
WORKLOADS = {"redis", "minio", "inference", "gateway", "prometheus", "grafana", "alertmanager"}


def deployments(recorder: Recorder) -> dict[str, dict[str, Any]]:
    return {r.name: unwrap(r.inputs) for r in recorder.of_type(DEPLOYMENT)}


def pod_specs(recorder: Recorder) -> dict[str, dict[str, Any]]:
    specs = {n: d["spec"]["template"]["spec"] for n, d in deployments(recorder).items()}
    for r in recorder.of_type("kubernetes:batch/v1:Job"):
        specs[r.name] = unwrap(r.inputs)["spec"]["template"]["spec"]
    return specs


def test_inventory(prod: tuple[Recorder, Platform]) -> None:
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
    assert {r.name for r in recorder.of_type("kubernetes:policy/v1:PodDisruptionBudget")} == {
        "gateway",
        "inference",
    }
    assert len(recorder.of_type("kubernetes:helm.sh/v4:Chart")) == 1
    assert not recorder.of_type("docker:index/container:Container")


def test_namespace_enforces_restricted_pod_security(prod: tuple[Recorder, Platform]) -> None:
    recorder, _ = prod
    ns = unwrap(recorder.named("kubernetes:core/v1:Namespace", "namespace").inputs)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_pod_meets_the_restricted_profile(prod: tuple[Recorder, Platform]) -> None:
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


def test_long_running_pods_have_probes_on_declared_ports(prod: tuple[Recorder, Platform]) -> None:
    recorder, _ = prod
    for name, d in deployments(recorder).items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        ports = {p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert probe in c, (name, probe)
            check = c[probe].get("httpGet") or c[probe].get("tcpSocket")
            if check:
                assert check["port"] in ports, (name, probe)


def test_project_images_come_from_the_registry(prod: tuple[Recorder, Platform]) -> None:
    recorder, _ = prod
    images = {n: s["containers"][0]["image"] for n, s in pod_specs(recorder).items()}
    assert images["gateway"] == "registry.example.com/dataplatform/gateway:0.1.0"
    assert images["inference"] == "registry.example.com/dataplatform/inference:0.1.0"
    assert images["minio"] == "registry.example.com/dataplatform/minio:0.1.0"
    assert images["redis"] == "redis:7.4.5-bookworm"


def test_gateway_service_maps_80_to_8080(prod: tuple[Recorder, Platform]) -> None:
    recorder, _ = prod
    svc = unwrap(recorder.named("kubernetes:core/v1:Service", "gateway").inputs)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    inference = unwrap(recorder.named("kubernetes:core/v1:Service", "inference").inputs)
    assert inference["spec"]["ports"][0]["port"] == 3000


def test_ingress_with_tls_from_config(prod: tuple[Recorder, Platform]) -> None:
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


def test_secrets_are_referenced_never_inlined(prod: tuple[Recorder, Platform]) -> None:
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


def test_stateful_workloads_use_their_claims_and_recreate(prod: tuple[Recorder, Platform]) -> None:
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


def test_autoscaling_and_disruption_budgets(prod: tuple[Recorder, Platform]) -> None:
    recorder, _ = prod
    hpa = unwrap(recorder.named("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "gateway").inputs)
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 8
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
    pdb = unwrap(recorder.named("kubernetes:policy/v1:PodDisruptionBudget", "inference").inputs)
    assert pdb["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "inference"}},
    }
    # The HPA owns the replica count.
    assert "replicas" not in deployments(recorder)["gateway"]["spec"]


def policies(recorder: Recorder) -> dict[str, dict[str, Any]]:
    return {
        r.name: unwrap(r.inputs)["spec"]
        for r in recorder.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }


def test_network_policies_default_deny_then_declared_flows(prod: tuple[Recorder, Platform]) -> None:
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
    assert callers("minio") == {"inference", "minio-init", "prometheus"}
    assert callers("prometheus") == {"grafana"}
    # Spark pods reach MinIO and Redis.
    spark_peer = {"podSelector": {"matchLabels": {"dataplatform.io/spark-app": "true"}}}
    assert any(spark_peer in rule.get("from", []) for rule in ps["minio"]["ingress"])
    # Only the gateway accepts traffic from outside the platform.
    open_to_all = {n for n, p in ps.items() if any("from" not in rule for rule in p.get("ingress") or [])}
    assert open_to_all == {"gateway"}
    # Egress: gateway to inference on 3000 only (plus DNS).
    gateway_egress = ps["gateway"]["egress"]
    to_inference = next(
        r
        for r in gateway_egress
        if r.get("to") == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "inference"}}}]
    )
    assert to_inference["ports"] == [{"protocol": "TCP", "port": 3000}]


def test_spark_operator_and_jobs(prod: tuple[Recorder, Platform]) -> None:
    recorder, _ = prod
    chart = unwrap(recorder.of_type("kubernetes:helm.sh/v4:Chart")[0].inputs)
    assert chart["version"] == "2.3.0"
    assert chart["values"]["webhook"]["enable"] is True
    assert chart["values"]["spark"]["jobNamespaces"] == ["dataplatform"]
    role = unwrap(recorder.named("kubernetes:rbac.authorization.k8s.io/v1:Role", "spark-driver").inputs)
    assert "pods" in role["rules"][0]["resources"] and "create" in role["rules"][0]["verbs"]
    apps = {
        r.name: unwrap(r.inputs)
        for r in recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication")
    }
    assert set(apps) == {"features-nightly", "train-nightly"}
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


def test_unscheduled_job_is_a_spark_application() -> None:
    recorder, _ = run_stack("prod", {"sparkJobs": [{"name": "counts", "job": "event_counts", "args": ["a"]}]})
    apps = recorder.of_type("kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication")
    assert [a.name for a in apps] == ["counts"]


def test_render_mode_is_a_provider_setting() -> None:
    recorder, _ = run_stack("prod", {"kubernetes": {"renderDir": "/tmp/rendered"}})
    provider = unwrap(recorder.of_type("pulumi:providers:kubernetes")[0].inputs)
    assert provider["renderYamlToDirectory"] == "/tmp/rendered"


def test_a_job_from_the_cli_gets_the_pod_spec_of_the_stack_s_own_job() -> None:
    """One builder (jobs.launch): the CLI's SparkApplication for a job equals
    the one the stack declares for it in everything that shapes its pods."""
    from jobs import submit
    from jobs.launch import pod_spec_of

    overrides = {"sparkJobs": [{"name": "dp-features", "job": "features", "args": ["--keep", "3"]}]}
    config = {**stack_config("prod"), **overrides}
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack="prod", preview=False)
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    )
    outputs: dict[str, Any] = {}

    def program() -> None:
        platform = Platform(PROJECT, load_settings(), "prod")
        pulumi.Output.from_input(platform.outputs["spark_submit"]).apply(outputs.update)

    _sync_await(run_pulumi_func(program))
    declared = unwrap(
        recorder.named("kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication", "dp-features").inputs
    )
    target = submit.StackTarget.from_outputs(
        {"spark_submit": outputs, "platform_credentials": {"s3_access_key": "a", "s3_secret_key": "s",
                                                          "redis_password": "r"}},
        "prod",
    )
    assert outputs["secret_name"] == "spark-credentials"
    cli = submit.application(
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
