"""Alerts and panels read metrics that exist, and the alerts fire when they
should: the metric catalog, the generated rules and their promtool unit
tests, the dashboard built with Grafana's SDK."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from dataplatform.config import SettingsError
from dataplatform.monitoring import dashboard, metrics
from dataplatform.monitoring.rules import ALERT_NAMES, DEFAULT_FOR, alert_rules, expressions, rules_yaml
from dataplatform.platform import DataPlatform
from dataplatform.project import PACKAGE_DIR
from tools import render
from tools.harness import Recorder, run_stack

RULE_TESTS = render.RULE_TESTS
# Nodes holding one sub-expression.
WRAPPERS = (
    promql_parser.AggregateExpr,
    promql_parser.ParenExpr,
    promql_parser.UnaryExpr,
    promql_parser.SubqueryExpr,
)


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects, from its syntax tree."""
    # Grafana's range variable is not PromQL; any duration parses the same.
    tree = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
            if name is None:
                raise ValueError(f"{expr!r} selects series without naming a metric")
            found.add(name)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, WRAPPERS):
            walk(node.expr)

    walk(tree)
    return found


def uncatalogued(queries: list[tuple[str, str]]) -> list[str]:
    known = metrics.catalog()
    return [
        f"{where}: {name}"
        for where, expr in queries
        for name in sorted(metric_names(expr))
        if name not in known
    ]


@pytest.fixture(scope="module")
def dev_rules(dev: tuple[Recorder, DataPlatform]) -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(dev[1].services["prometheus"].rules)
    return rules


@pytest.fixture(scope="module")
def prod_rules(prod: tuple[Recorder, DataPlatform]) -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(prod[1].services["prometheus"].rules)
    return rules


def jobs_of(platform: DataPlatform) -> set[str]:
    config = yaml.safe_load(platform.services["prometheus"].config)
    return {job["job_name"] for job in config["scrape_configs"]}


@pytest.fixture(scope="module")
def every_rule(dev: tuple[Recorder, DataPlatform], prod: tuple[Recorder, DataPlatform]) -> dict[str, Any]:
    """The rules for the scrape jobs of both tiers: every alert there is."""
    return alert_rules(sorted((jobs_of(dev[1]) | jobs_of(prod[1])) - metrics.TRANSIENT_JOBS))


def test_rules_and_panels_name_only_catalogued_metrics(every_rule: dict[str, Any]) -> None:
    assert uncatalogued(expressions(every_rule)) == []
    assert uncatalogued(dashboard.expressions(dashboard.as_dict())) == []
    used = {
        n
        for _, e in expressions(every_rule) + dashboard.expressions(dashboard.as_dict())
        for n in metric_names(e)
    }
    # Each service's alerts and panels read its metrics.
    for service in metrics.SERVICES:
        assert used & {s for m in service.metrics for s in m.samples}, service.job


def test_a_metric_name_outside_the_catalog_is_reported() -> None:
    # The names the rules and dashboard used before the catalog existed.
    queries = [
        ("rule", 'sum(rate(gateway_requests_total{status=~"5.."}[5m]))'),
        (
            "panel",
            "histogram_quantile(0.99, sum by (le) (rate(inference_request_duration_seconds_bucket[5m])))",
        ),
        ("panel", "sum(rate(gateway_rate_limited_total[$__rate_interval]))"),
        ("ok", "sum(rate(gateway_http_requests_total[5m]))"),
    ]
    assert uncatalogued(queries) == [
        "rule: gateway_requests_total",
        "panel: inference_request_duration_seconds_bucket",
        "panel: gateway_rate_limited_total",
    ]


def test_the_catalog_names_metrics_as_their_exposition_does() -> None:
    for metric in (m for s in metrics.SERVICES for m in s.metrics):
        # The operator's Go client adds no _total to its counters' names.
        if metric.type == "counter" and metric not in metrics.SPARK_OPERATOR.metrics:
            assert metric.name.endswith("_total"), metric.name
        if metric.type == "histogram":
            assert metric.samples == {f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"}


def test_one_service_down_rule_per_scrape_job(
    dev_rules: dict[str, Any], dev: tuple[Recorder, DataPlatform]
) -> None:
    config = yaml.safe_load(dev[1].services["prometheus"].config)
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    rules = dev_rules["groups"][0]["rules"]
    down = {r["labels"]["job"]: r for r in rules if r["alert"] == "ServiceDown"}
    assert set(down) == jobs
    assert down["inference"]["expr"] == 'absent(up{job="inference"} == 1)'
    # The operator's alert where the operator is scraped (prod) only.
    assert {r["alert"] for r in rules} == set(ALERT_NAMES) - {"SparkApplicationFailed"}


def test_prod_has_every_alert_and_no_service_down_for_transient_drivers(
    prod_rules: dict[str, Any], prod: tuple[Recorder, DataPlatform]
) -> None:
    rules = prod_rules["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == set(ALERT_NAMES)
    down = {r["labels"]["job"] for r in rules if r["alert"] == "ServiceDown"}
    assert down == jobs_of(prod[1]) - {"spark-drivers"}


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return render.promtool()
    except FileNotFoundError as exc:
        pytest.fail(f"promtool is needed to test the alert rules: {exc}")


def test_alert_unit_tests_pass(every_rule: dict[str, Any], promtool: Path, tmp_path: Path) -> None:
    run = render.run_rule_tests(yaml.safe_dump(every_rule), tmp_path)
    assert run.ok, run.output
    assert "SUCCESS" in run.output


def test_a_tiers_rules_run_the_cases_of_their_own_alerts(
    dev_rules: dict[str, Any], promtool: Path, tmp_path: Path
) -> None:
    run = render.run_rule_tests(yaml.safe_dump(dev_rules), tmp_path)
    assert run.ok, run.output
    ran = yaml.safe_load((tmp_path / render.RULE_TESTS.name).read_text())["tests"]
    assert {c["alertname"] for case in ran for c in case["alert_rule_test"]} == set(ALERT_NAMES) - {
        "SparkApplicationFailed"
    }


def test_alert_unit_tests_fail_when_a_rule_reads_a_missing_metric(
    every_rule: dict[str, Any], promtool: Path, tmp_path: Path
) -> None:
    broken = yaml.safe_dump(every_rule).replace(str(metrics.GATEWAY_HTTP_REQUESTS), "gateway_requests_total")
    run = render.run_rule_tests(broken, tmp_path)
    assert not run.ok
    assert "GatewayHighErrorRate" in run.output


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == set(ALERT_NAMES)
    assert quiet == set(ALERT_NAMES)


def test_promtool_accepts_the_rules_and_config(
    dev: tuple[Recorder, DataPlatform], promtool: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(dev[1].services["prometheus"].rules)
    config = yaml.safe_load(dev[1].services["prometheus"].config)
    config["rule_files"] = [str(rules)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for args in (["check", "rules", str(rules)], ["check", "config", str(tmp_path / "prometheus.yml")]):
        proc = subprocess.run([str(promtool), *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_durations_and_intervals_come_from_config() -> None:
    _, platform = run_stack(
        "dev",
        {
            "grafana": {"enabled": False},
            "monitoring": {
                "scrapeInterval": "5s",
                "evaluationInterval": "5s",
                "alertFor": {"ServiceDown": "10s"},
            },
        },
    )
    config = yaml.safe_load(platform.services["prometheus"].config)
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "5s"
    rules = yaml.safe_load(platform.services["prometheus"].rules)["groups"][0]["rules"]
    assert {r["for"] for r in rules if r["alert"] == "ServiceDown"} == {"10s"}
    assert {r["for"] for r in rules if r["alert"] == "TargetDown"} == {DEFAULT_FOR["TargetDown"]}


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"alertFor": {"NoSuchAlert": "1m"}}, "dataplatform:monitoring.alertFor: unknown alert NoSuchAlert"),
        (
            {"alertFor": {"ServiceDown": "soon"}},
            "dataplatform:monitoring.alertFor: must be a Prometheus duration",
        ),
        ({"scrapeInterval": "15 s"}, "dataplatform:monitoring.scrapeInterval: must be a Prometheus duration"),
    ],
)
def test_bad_monitoring_settings_name_the_key(monitoring: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        run_stack("dev", {"monitoring": monitoring})


def test_rules_refuse_an_unknown_alert_override() -> None:
    with pytest.raises(KeyError, match="NoSuchAlert"):
        alert_rules(["gateway"], {"NoSuchAlert": "1m"})
    assert "ServiceDown" in rules_yaml(["gateway"])


def test_dashboard_is_built_with_the_sdk_and_reads_the_provisioned_datasource() -> None:
    model = dashboard.as_dict()
    assert model["uid"] == dashboard.UID and model["editable"] is False
    panels = model["panels"]
    assert len(panels) >= 10
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))
    datasource = yaml.safe_load(
        (
            PACKAGE_DIR / "monitoring" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
        ).read_text()
    )["datasources"][0]
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["w"] > 0 and panel["gridPos"]["h"] > 0


def test_no_hand_written_dashboard_or_rules_remain() -> None:
    assert not list((PACKAGE_DIR / "monitoring").rglob("*.json"))
    assert not (PACKAGE_DIR / "monitoring" / "prometheus" / "rules.yml").exists()
