"""The catalogue of the platform's services, in the order the platform builds them: a
service comes after those it reads (Prometheus scrapes the ones above it)."""

from __future__ import annotations

from dataplatform.services import (
    alertmanager,
    gateway,
    grafana,
    inference,
    minio,
    prometheus,
    redis,
    spark,
    spark_history,
)
from dataplatform.services.base import ServiceSpec

SERVICES: tuple[ServiceSpec, ...] = (
    redis.SPEC,
    minio.SPEC,
    spark.SPEC,
    spark_history.SPEC,
    inference.SPEC,
    gateway.SPEC,
    alertmanager.SPEC,
    prometheus.SPEC,
    grafana.SPEC,
)
