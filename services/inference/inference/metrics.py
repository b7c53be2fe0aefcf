"""Prometheus metrics, kept on a registry owned by each application instance."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# Why a model version failed to load (registry.py); each series is exported
# from the start at zero, so increase() sees the first failure.
RELOAD_FAILURE_REASONS = ("registry_unavailable", "invalid")

# Latency buckets sized for an in-process ONNX model plus one Redis round trip.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """All service metrics; one instance per app so tests and reloads never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

        self.predictions = Counter(
            "inference_predictions",
            "Rows scored, by where their features came from.",
            ["source"],
            registry=self.registry,
        )
        self.requests = Counter(
            "inference_predict_requests",
            "Prediction requests by source and HTTP status code.",
            ["source", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inference_predict_duration_seconds",
            "Time to answer a successful prediction request, feature lookup included.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Rows per successful prediction request.",
            ["source"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "inference_errors",
            "Requests answered with an error, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "inference_model_info",
            "The model being served (value 1 for the live name and version).",
            ["name", "version"],
            registry=self.registry,
        )
        self.model_loaded_timestamp = Gauge(
            "inference_model_loaded_timestamp_seconds",
            "Unix time at which the live model was loaded.",
            registry=self.registry,
        )
        self.model_reloads = Counter(
            "inference_model_reloads",
            "Model versions loaded successfully, the first one included.",
            registry=self.registry,
        )
        self.model_reload_failures = Counter(
            "inference_model_reload_failures",
            "Attempts to load a model version that failed, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in RELOAD_FAILURE_REASONS:
            self.model_reload_failures.labels(reason=reason)
        self.build = Info(
            "inference_build",
            "Versions of the serving stack.",
            registry=self.registry,
        )

    def set_live_model(self, name: str, version: str, loaded_at: float) -> None:
        # Exactly one series stays at 1, so dashboards can join on the live version.
        self.model_info.clear()
        self.model_info.labels(name=name, version=version).set(1)
        self.model_loaded_timestamp.set(loaded_at)
        self.model_reloads.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
