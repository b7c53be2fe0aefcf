"""Prometheus alert rules, built from the metric catalog.

``ServiceDown`` is one rule per scrape job. It fires when no target of the
job is up, which includes the case where the job has no target at all: a
stopped container or an unready pod leaves DNS, so its target disappears
from discovery instead of reporting ``up == 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from dataplatform.monitoring import metrics as m

GROUP = "dataplatform"

# How long each condition must hold before the alert fires.
DEFAULT_FOR: dict[str, str] = {
    "ServiceDown": "2m",
    "TargetDown": "5m",
    "GatewayHighErrorRate": "10m",
    "GatewayRateLimitBackendDown": "5m",
    "InferenceSlow": "10m",
    "InferenceModelReloadFailing": "0s",
    "SparkApplicationFailed": "0s",
}
# How long a failed application keeps its alert firing.
FAILURE_WINDOW = "15m"
ALERT_NAMES = tuple(DEFAULT_FOR)


def _rule(
    alert: str,
    expr: str,
    severity: str,
    summary: str,
    durations: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": alert, "expr": expr}
    if durations[alert] not in ("0s", "0m", "0"):
        rule["for"] = durations[alert]
    rule["labels"] = {"severity": severity, **(labels or {})}
    rule["annotations"] = {"summary": summary}
    return rule


def alert_rules(jobs: Sequence[str], alert_for: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The rule file's content. ``jobs`` are the scrape jobs (workload
    names); ``alert_for`` overrides the ``for`` of alerts by name."""
    unknown = sorted(set(alert_for or {}) - set(ALERT_NAMES))
    if unknown:
        raise KeyError(f"unknown alerts {unknown}; known: {', '.join(ALERT_NAMES)}")
    durations = {**DEFAULT_FOR, **(alert_for or {})}
    requests, duration = m.GATEWAY_HTTP_REQUESTS, m.INFERENCE_PREDICT_DURATION
    rules = [
        _rule(
            "ServiceDown",
            f'absent({m.UP}{{job="{job}"}} == 1)',
            "critical",
            f"No {job} target is up",
            durations,
            {"job": job},
        )
        for job in sorted(set(jobs))
    ]
    rules += [
        _rule(
            "TargetDown",
            f"{m.UP} == 0",
            "warning",
            "{{ $labels.job }} target {{ $labels.instance }} is down",
            durations,
        ),
        _rule(
            "GatewayHighErrorRate",
            f'sum(rate({requests}{{status=~"5.."}}[5m])) / clamp_min(sum(rate({requests}[5m])), 1e-9) > 0.05',
            "critical",
            "More than 5% of gateway requests fail with 5xx",
            durations,
        ),
        _rule(
            "GatewayRateLimitBackendDown",
            f"increase({m.GATEWAY_RATELIMIT_BACKEND_ERRORS}[5m]) > 0",
            "warning",
            "The gateway cannot reach Redis for rate limiting",
            durations,
        ),
        _rule(
            "InferenceSlow",
            f"histogram_quantile(0.99, sum by (le) (rate({duration.bucket}[5m]))) > 0.5",
            "warning",
            "Inference p99 latency above 500 ms",
            durations,
        ),
        _rule(
            "InferenceModelReloadFailing",
            f"increase({m.INFERENCE_MODEL_RELOAD_FAILURES}[30m]) > 0",
            "warning",
            "A new model version failed to load; the previous one is still served",
            durations,
        ),
    ]
    if m.SPARK_OPERATOR.job in jobs:
        # Only where the operator is scraped (prod): elsewhere it could never fire.
        rules.append(
            _rule(
                "SparkApplicationFailed",
                _failed_recently(m.SPARK_APPLICATION_FAILURES, FAILURE_WINDOW),
                "warning",
                "A run of Spark job {{ $labels.dataplatform_job }} in {{ $labels.namespace }} failed",
                durations,
            )
        )
    return {"groups": [{"name": GROUP, "rules": rules}]}


def _failed_recently(failures: m.Metric, window: str) -> str:
    """Whether a counter of failures rose within ``window``, per application
    labels. The operator makes a label set's series on its first failure,
    at 1, which ``increase`` alone reads as no rise: a series that did not
    exist ``window`` ago counts too."""
    by = ", ".join(failures.labels)
    return (
        f"sum by ({by}) (increase({failures}[{window}])) > 0"
        f" or sum by ({by}) ({failures} unless {failures} offset {window}) > 0"
    )


def rules_yaml(jobs: Sequence[str], alert_for: Mapping[str, str] | None = None) -> str:
    return yaml.safe_dump(alert_rules(jobs, alert_for), sort_keys=False, width=1000)


def expressions(rules: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(alert, PromQL) of every rule in a rule file's content."""
    return [(r.get("alert") or r.get("record", ""), r["expr"]) for g in rules["groups"] for r in g["rules"]]
