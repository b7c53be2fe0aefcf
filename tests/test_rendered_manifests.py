"""The prod stack rendered by the real engine (pulumi-kubernetes render
mode, ``tools/render.py``) and checked offline: the same objects as the
program declares, strict Kubernetes schemas, the Spark Operator's API, and
promtool on Prometheus' configuration and rules (their unit tests included),
amtool on Alertmanager's configuration.

The render runs once per session (the ``rendered`` fixture in
``conftest.py``, which ``test_manifest_lint.py`` shares; seconds with a warm
toolchain; the Spark Operator's chart is left out, see ``tools/render.py``).
Without the Pulumi toolchain (``scripts/bootstrap.sh``) the render tests are
skipped; the checks' own tests below always run.
"""

from __future__ import annotations

import collections
import copy
from pathlib import Path
from typing import Any

import yaml

from dataplatform.monitoring import metrics
from dataplatform.monitoring.rules import alert_rules, rules_yaml
from tools import render
from tools.harness import ROOT, run_stack, unwrap

# What every prod render must hold at least, whatever else is added later.
REQUIRED_KINDS = {
    "Namespace",
    "NetworkPolicy",
    "Deployment",
    "Job",
    "Service",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ScheduledSparkApplication",
}


def identity(api_version: str, kind: str, metadata: dict[str, Any]) -> tuple[str, str, str, str]:
    return (api_version, kind, metadata.get("namespace") or "", metadata["name"])


def declared_under_mocks() -> set[tuple[str, str, str, str]]:
    """Every Kubernetes object the program declares for the same config."""
    recorder, _ = run_stack("prod", {"sparkOperator": {"install": False}})
    objects = set()
    for r in recorder.resources:
        if not r.custom or not r.typ.startswith("kubernetes:") or r.typ.startswith("pulumi:providers:"):
            continue
        group_version, kind = r.typ.removeprefix("kubernetes:").rsplit(":", 1)
        api_version = group_version.removeprefix("core/")
        metadata = unwrap(r.inputs).get("metadata") or {}
        objects.add(identity(api_version, kind, {"name": r.name, **metadata}))
    return objects


# -- the render -------------------------------------------------------------


def test_renders_every_declared_object_and_nothing_else(rendered: render.Rendered) -> None:
    got = [identity(m.api_version, m.kind, m.obj.get("metadata") or {}) for m in rendered.manifests]
    assert len(got) == len(set(got)), "an object is rendered twice"
    assert set(got) == declared_under_mocks()


def test_expected_kinds_and_counts(rendered: render.Rendered) -> None:
    kinds = rendered.kinds()
    assert set(kinds) >= REQUIRED_KINDS, REQUIRED_KINDS - set(kinds)
    config = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    jobs = config.get("dataplatform:sparkJobs") or []
    assert kinds["ScheduledSparkApplication"] == sum(1 for j in jobs if j.get("schedule"))
    # The stack's unscheduled jobs, and the streaming job (on by default in prod).
    assert kinds["SparkApplication"] == sum(1 for j in jobs if not j.get("schedule")) + 1
    # The platform's and the jobs'; sparkOperator.install false: no operator namespace.
    assert kinds["Namespace"] == 2
    assert kinds["Ingress"] == 1
    assert kinds["HorizontalPodAutoscaler"] == 2
    # One budget per long-running workload.
    assert kinds["PodDisruptionBudget"] == kinds["Deployment"]
    # Default-deny plus one policy per workload and per pod group.
    assert kinds["NetworkPolicy"] > kinds["Deployment"]
    # Jobs apart: their applications, Secret, accounts and policies in the
    # jobs namespace; the admission policy is cluster-wide.
    cluster_wide = {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    spread = collections.Counter(m.namespace for m in rendered.manifests if m.kind not in cluster_wide)
    assert set(spread) == {"dataplatform", "dataplatform-jobs"}
    in_jobs = {
        (m.kind, m.obj["metadata"]["name"]) for m in rendered.manifests if m.namespace == "dataplatform-jobs"
    }
    assert {kind for kind, _ in in_jobs} == {
        "ScheduledSparkApplication",
        # The streaming job.
        "SparkApplication",
        "Secret",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        # Selecting the drivers, for Prometheus to find them.
        "Service",
    }
    assert {name for kind, name in in_jobs if kind == "Secret"} == {"spark-credentials"}
    assert {name for kind, name in in_jobs if kind == "Service"} == {"spark-drivers-metrics"}


def test_all_pass_strict_schema_validation(rendered: render.Rendered) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert rendered.version == str(config["dataplatform:kubernetes"]["version"]) == "1.33"
    found = render.validate_schemas(rendered.manifests, rendered.version)
    assert found.errors == []
    assert len(found.checked) == sum(1 for m in rendered.manifests if not m.is_spark)


def test_spark_resources_match_the_operator_api(rendered: render.Rendered) -> None:
    found = render.check_spark_resources(rendered.manifests)
    assert found.errors == []
    assert len(found.checked) == sum(1 for m in rendered.manifests if m.is_spark) > 0


def test_promtool_and_amtool_checks(rendered: render.Rendered, tmp_path: Path) -> None:
    runs = render.check_prometheus(rendered.manifests, tmp_path)
    assert [r.what for r in runs] == [
        "promtool check config",
        "promtool check rules",
        "promtool test rules",
        "amtool check-config",
    ]
    for run in runs:
        assert run.ok, f"{run.what}:\n{run.output}"
    assert "SUCCESS" in runs[1].output and "SUCCESS" in runs[2].output


def test_rendered_rules_are_the_generated_rules(rendered: render.Rendered) -> None:
    files = render.prometheus_files(rendered.manifests)
    config = yaml.safe_load(files["prometheus.yml"])
    # A job whose pods come and go with Spark jobs has no ServiceDown rule.
    jobs = [
        job["job_name"] for job in config["scrape_configs"] if job["job_name"] not in metrics.TRANSIENT_JOBS
    ]
    assert files["rules.yml"] == rules_yaml(jobs)
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]}


def test_nothing_left_behind(rendered: render.Rendered) -> None:
    assert not (ROOT / f"Pulumi.{rendered.stack}.yaml").exists()
    assert not rendered.directory.is_relative_to(ROOT)
    assert any(m.kind == "Secret" for m in rendered.manifests)


# -- the checks themselves (no engine needed) ------------------------------


DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "dataplatform"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1.0"}]},
        },
    },
}


def manifest(obj: dict[str, Any]) -> render.Manifest:
    return render.Manifest(Path("test.yaml"), obj)


def test_strict_validation_rejects_unknown_fields_and_bad_types() -> None:
    assert render.validate_schemas([manifest(DEPLOYMENT)], "1.33").errors == []
    typo = copy.deepcopy(DEPLOYMENT)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "IfNotPresent"
    wrong = copy.deepcopy(DEPLOYMENT)
    wrong["spec"]["replicas"] = "two"
    unknown = {"apiVersion": "apps/v1", "kind": "Deploymentt", "metadata": {"name": "x"}}
    errors = render.validate_schemas([manifest(typo), manifest(wrong), manifest(unknown)], "1.33").errors
    assert len(errors) == 3
    assert "imagePullPolicyy" in errors[0]
    assert "replicas" in errors[1]
    assert "Deploymentt" in errors[2]


def spark_application() -> dict[str, Any]:
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": "counts", "namespace": "dataplatform"},
        "spec": {
            "type": "Python",
            "mode": "cluster",
            "sparkVersion": "4.0.1",
            "mainApplicationFile": "local:///opt/jobs/main.py",
            "driver": {"cores": 1, "memory": "1g", "serviceAccount": "spark-driver"},
            "executor": {"cores": 1, "instances": 1, "memory": "1g"},
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}}],
        },
    }


def test_spark_check_rejects_unknown_missing_and_mistyped_fields() -> None:
    assert render.check_spark_resources([manifest(spark_application())]).errors == []
    bad = spark_application()
    bad["spec"]["driver"]["coress"] = 1
    bad["spec"]["executor"]["instances"] = "1"
    del bad["spec"]["mainApplicationFile"]
    bad["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] = ["2Gi"]
    errors = render.check_spark_resources([manifest(bad)]).errors
    joined = "\n".join(errors)
    assert "spec.driver.coress: unknown field" in joined
    assert "spec.executor.instances" in joined
    assert "spec.mainApplicationFile: required field missing" in joined
    assert "spec.volumes[0].emptyDir.sizeLimit" in joined
    scheduled = {
        **spark_application(),
        "kind": "ScheduledSparkApplication",
        "spec": {"schedule": "@daily", "template": spark_application()["spec"]},
    }
    assert render.check_spark_resources([manifest(scheduled)]).errors == []
    del scheduled["metadata"]["namespace"]
    assert "metadata.namespace" in render.check_spark_resources([manifest(scheduled)]).errors[0]


def test_promtool_and_amtool_reject_broken_files(tmp_path: Path) -> None:
    rules = alert_rules(["prometheus", "gateway"])
    rules["groups"][0]["rules"][0]["expr"] = "up ==== 0"
    config = {"global": {"scrape_interval": "15s"}, "rule_files": ["/etc/prometheus/rules.yml"]}
    configmaps = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "prometheus-files-0", "namespace": "dataplatform"},
            "data": {"prometheus.yml": yaml.safe_dump(config), "rules.yml": yaml.safe_dump(rules)},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "alertmanager-files-0", "namespace": "dataplatform"},
            "data": {"alertmanager.yml": "route:\n  receiver: nobody-declared\n"},
        },
    ]
    runs = {r.what: r for r in render.check_prometheus([manifest(c) for c in configmaps], tmp_path)}
    assert not runs["promtool check rules"].ok
    assert not runs["promtool check config"].ok  # it loads the rule files it names
    assert not runs["promtool test rules"].ok
    assert not runs["amtool check-config"].ok
    assert collections.Counter(r.ok for r in runs.values()) == {False: 4}
