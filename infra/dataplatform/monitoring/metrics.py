"""The metrics the platform's alerts and dashboards read, per service.

One constant per metric, named as the service exports it. Rules and panels
use these constants, never literal names, and the services' tests scrape
their real ``/metrics`` and fail on any name listed here that is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True)
class Metric:
    """A metric family as it appears in the exposition format."""

    name: str
    type: MetricType
    labels: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name

    @property
    def bucket(self) -> str:
        if self.type != "histogram":
            raise TypeError(f"{self.name} is a {self.type}, not a histogram")
        return f"{self.name}_bucket"

    @property
    def samples(self) -> frozenset[str]:
        """The sample names a query may use."""
        if self.type == "histogram":
            return frozenset(f"{self.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return frozenset({self.name})


@dataclass(frozen=True)
class Service:
    """The metrics one scrape job exports; ``job`` is the workload's name.
    ``transient``: its targets exist only while a Spark job runs, so its
    series are looked for over a past run, not at any instant."""

    job: str
    metrics: tuple[Metric, ...]
    transient: bool = False


# Written by Prometheus itself for every target it scrapes.
UP = Metric("up", "gauge", ("job", "instance"))
ALERTS = Metric("ALERTS", "gauge", ("alertname", "alertstate"))
SCRAPE = (UP, ALERTS)

# services/gateway/src/metrics.rs (registry prefix "gateway").
GATEWAY_HTTP_REQUESTS = Metric("gateway_http_requests_total", "counter", ("route", "method", "status"))
GATEWAY_HTTP_DURATION = Metric("gateway_http_request_duration_seconds", "histogram", ("route",))
GATEWAY_UPSTREAM_ERRORS = Metric("gateway_upstream_errors_total", "counter", ("kind",))
GATEWAY_RATELIMIT_REJECTED = Metric("gateway_ratelimit_rejected_total", "counter")
GATEWAY_RATELIMIT_BACKEND_ERRORS = Metric("gateway_ratelimit_backend_errors_total", "counter")
GATEWAY_RATELIMIT_BYPASSED = Metric("gateway_ratelimit_bypassed_total", "counter")
GATEWAY = Service(
    "gateway",
    (
        GATEWAY_HTTP_REQUESTS,
        GATEWAY_HTTP_DURATION,
        GATEWAY_UPSTREAM_ERRORS,
        GATEWAY_RATELIMIT_REJECTED,
        GATEWAY_RATELIMIT_BACKEND_ERRORS,
        GATEWAY_RATELIMIT_BYPASSED,
    ),
)

# services/inference/inference/metrics.py (prometheus_client adds "_total").
INFERENCE_PREDICTIONS = Metric("inference_predictions_total", "counter", ("source",))
INFERENCE_PREDICT_REQUESTS = Metric("inference_predict_requests_total", "counter", ("source", "status"))
INFERENCE_PREDICT_DURATION = Metric("inference_predict_duration_seconds", "histogram", ("source",))
INFERENCE_MODEL_INFO = Metric("inference_model_info", "gauge", ("name", "version"))
INFERENCE_MODEL_RELOAD_FAILURES = Metric("inference_model_reload_failures_total", "counter", ("reason",))
INFERENCE = Service(
    "inference",
    (
        INFERENCE_PREDICTIONS,
        INFERENCE_PREDICT_REQUESTS,
        INFERENCE_PREDICT_DURATION,
        INFERENCE_MODEL_INFO,
        INFERENCE_MODEL_RELOAD_FAILURES,
    ),
)

# MinIO's cluster metrics (v2, /minio/v2/metrics/cluster).
MINIO_CAPACITY_USABLE_TOTAL = Metric("minio_cluster_capacity_usable_total_bytes", "gauge")
MINIO_CAPACITY_USABLE_FREE = Metric("minio_cluster_capacity_usable_free_bytes", "gauge")
MINIO = Service("minio", (MINIO_CAPACITY_USABLE_TOTAL, MINIO_CAPACITY_USABLE_FREE))

# Spark's PrometheusServlet sink on the standalone master.
SPARK_MASTER_ALIVE_WORKERS = Metric("metrics_master_aliveWorkers_Value", "gauge")
SPARK_MASTER = Service("spark-master", (SPARK_MASTER_ALIVE_WORKERS,))

# A Spark driver's UI, /metrics/executors/prometheus (prod): a series per
# live executor of its application, the driver included as executor_id
# "driver". Spark writes no TYPE lines; the counters end in _total.
_EXECUTOR = ("application_id", "application_name", "executor_id")
SPARK_EXECUTOR_CORES = Metric("metrics_executor_totalCores", "gauge", _EXECUTOR)
SPARK_EXECUTOR_TASK_SECONDS = Metric("metrics_executor_totalDuration_seconds_total", "counter", _EXECUTOR)
SPARK_EXECUTOR_SHUFFLE_READ = Metric("metrics_executor_totalShuffleRead_bytes_total", "counter", _EXECUTOR)
SPARK_EXECUTOR_SHUFFLE_WRITE = Metric("metrics_executor_totalShuffleWrite_bytes_total", "counter", _EXECUTOR)
SPARK_DRIVERS = Service(
    "spark-drivers",
    (
        SPARK_EXECUTOR_CORES,
        SPARK_EXECUTOR_TASK_SECONDS,
        SPARK_EXECUTOR_SHUFFLE_READ,
        SPARK_EXECUTOR_SHUFFLE_WRITE,
    ),
    transient=True,
)

# The Spark Operator's controller (prod), with the application labels the
# platform has it copy (services/spark/operator.py). Its Go client names
# counters without _total, and makes a series on its first increment.
_APPLICATION = ("namespace", "dataplatform_job")
SPARK_APPLICATION_SUCCESSES = Metric("spark_application_success_count", "counter", _APPLICATION)
SPARK_APPLICATION_FAILURES = Metric("spark_application_failure_count", "counter", _APPLICATION)
SPARK_OPERATOR = Service("spark-operator", (SPARK_APPLICATION_SUCCESSES, SPARK_APPLICATION_FAILURES))

SERVICES = (GATEWAY, INFERENCE, MINIO, SPARK_MASTER, SPARK_DRIVERS, SPARK_OPERATOR)
# The scrape jobs whose targets come and go with Spark jobs.
TRANSIENT_JOBS = frozenset(s.job for s in SERVICES if s.transient)


def catalog() -> dict[str, Metric]:
    """Every sample name a rule or panel may use, with its metric."""
    found: dict[str, Metric] = {}
    for metric in (*SCRAPE, *(m for s in SERVICES for m in s.metrics)):
        for sample in metric.samples:
            found[sample] = metric
    return found


def service(job: str) -> Service:
    for candidate in SERVICES:
        if candidate.job == job:
            return candidate
    raise KeyError(f"no service with scrape job {job!r} in the catalog")
