"""The platform's Grafana dashboard, built with Grafana's foundation SDK.

Every query names its metrics through ``dataplatform.monitoring.metrics``; the tests
parse each panel's PromQL and fail on a name the catalog does not hold.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from dataplatform.monitoring import metrics as m

UID = "dataplatform"
FILENAME = "platform.json"
# The data source provisioned next to the dashboard (monitoring/grafana/provisioning).
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
# Grafana's own range for rate(): at least four scrape intervals.
RATE = "$__rate_interval"


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def _quantiles(histogram: m.Metric) -> list[prometheus.Dataquery]:
    return [
        _query(
            f"histogram_quantile({q}, sum by (le) (rate({histogram.bucket}[{RATE}])))",
            f"p{round(q * 100)}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.99, "B"))
    ]


def _timeseries(title: str, unit: str, queries: list[prometheus.Dataquery]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def build() -> dashboard.Dashboard:
    requests = m.GATEWAY_HTTP_REQUESTS
    return (
        dashboard.Dashboard("Data platform")
        .uid(UID)
        .tags(["dataplatform"])
        .timezone("utc")
        .readonly()
        .refresh("30s")
        .time("now-1h", "now")
        .with_panel(
            stat.Panel()
            .title("Scrape targets up")
            .datasource(DATASOURCE)
            .unit("short")
            .height(4)
            .span(24)
            .with_target(_query(f"sum by (job) ({m.UP})", "{{job}}"))
        )
        .with_panel(
            _timeseries(
                "Gateway requests by status",
                "reqps",
                [_query(f"sum by (status) (rate({requests}[{RATE}]))", "{{status}}")],
            )
        )
        .with_panel(_timeseries("Gateway latency", "s", _quantiles(m.GATEWAY_HTTP_DURATION)))
        .with_panel(
            _timeseries(
                "Rate-limited requests and upstream errors",
                "reqps",
                [
                    _query(f"sum(rate({m.GATEWAY_RATELIMIT_REJECTED}[{RATE}]))", "rate limited", "A"),
                    _query(
                        f"sum by (kind) (rate({m.GATEWAY_UPSTREAM_ERRORS}[{RATE}]))", "upstream {{kind}}", "B"
                    ),
                    _query(
                        f"sum(rate({m.GATEWAY_RATELIMIT_BYPASSED}[{RATE}]))", "let through, Redis down", "C"
                    ),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Predictions",
                "ops",
                [_query(f"sum by (source) (rate({m.INFERENCE_PREDICTIONS}[{RATE}]))", "{{source}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Inference requests by status",
                "reqps",
                [
                    _query(
                        f"sum by (status) (rate({m.INFERENCE_PREDICT_REQUESTS}[{RATE}]))",
                        "{{status}}",
                    )
                ],
            )
        )
        .with_panel(_timeseries("Inference latency", "s", _quantiles(m.INFERENCE_PREDICT_DURATION)))
        .with_panel(
            table.Panel()
            .title("Live model version")
            .datasource(DATASOURCE)
            .height(8)
            .span(12)
            .with_target(
                _query(f"max by (name, version) ({m.INFERENCE_MODEL_INFO})", "{{name}} {{version}}").instant()
            )
        )
        .with_panel(
            _timeseries(
                "MinIO capacity used",
                "bytes",
                [
                    _query(
                        f"sum({m.MINIO_CAPACITY_USABLE_TOTAL}) - sum({m.MINIO_CAPACITY_USABLE_FREE})",
                        "used",
                    )
                ],
            )
        )
        .with_panel(
            stat.Panel()
            .title("Spark workers alive")
            .datasource(DATASOURCE)
            .unit("short")
            .height(8)
            .span(12)
            .with_target(_query(f"max({m.SPARK_MASTER_ALIVE_WORKERS})", "alive workers"))
        )
        .with_panel(
            _timeseries(
                "Spark active executors (prod)",
                "short",
                [
                    _query(
                        f'count by (application_name) ({m.SPARK_EXECUTOR_CORES}{{executor_id!="driver"}})',
                        "{{application_name}}",
                    )
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Spark task time, per second (prod)",
                "s",
                [
                    _query(
                        f"sum by (application_name) (rate({m.SPARK_EXECUTOR_TASK_SECONDS}[{RATE}]))",
                        "{{application_name}}",
                    )
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Spark shuffle bytes (prod)",
                "Bps",
                [
                    _query(
                        f"sum by (application_name) (rate({m.SPARK_EXECUTOR_SHUFFLE_READ}[{RATE}]))",
                        "{{application_name}} read",
                        "A",
                    ),
                    _query(
                        f"sum by (application_name) (rate({m.SPARK_EXECUTOR_SHUFFLE_WRITE}[{RATE}]))",
                        "{{application_name}} written",
                        "B",
                    ),
                ],
            )
        )
        .with_panel(
            table.Panel()
            .title("Firing alerts")
            .datasource(DATASOURCE)
            .height(8)
            .span(12)
            .with_target(_query(f'{m.ALERTS}{{alertstate="firing"}}', "{{alertname}}").instant())
        )
    )


def as_dict() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    result: dict[str, Any] = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    return result


def as_json() -> str:
    return json.dumps(as_dict(), indent=2, sort_keys=True) + "\n"


def expressions(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in a dashboard's JSON model."""
    return [
        (str(panel.get("title")), str(target["expr"]))
        for panel in model.get("panels", [])
        for target in panel.get("targets", [])
        if "expr" in target
    ]
