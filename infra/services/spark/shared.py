"""What both ways of running Spark share: the image, the settings every
submission carries, the sizes of a job and what a driver needs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.services.common import project_image
from infra.settings import Settings, memory_bytes
from infra.workload import File, ProjectImage
from jobs.launch import MEMORY_OVERHEAD_MIB, SparkResources, memory_mib

MASTER_PORT = 7077
OVERHEAD = MEMORY_OVERHEAD_MIB * 1024 * 1024


def spark_memory(quantity: str) -> str:
    """A Kubernetes quantity in Spark's notation (whole mebibytes)."""
    return f"{memory_bytes(quantity) // (1024 * 1024)}m"


def mebibytes(n: int) -> str:
    return f"{n // (1024 * 1024)}Mi"


@dataclass(frozen=True)
class SparkEnvironment:
    """What every driver needs to reach the platform's data."""

    env: dict[str, pulumi.Input[str]]
    files: tuple[File, ...]
    talks_to: tuple[str, ...]


def image(settings: Settings) -> ProjectImage:
    return project_image(settings, "spark", ".", "images/spark/Dockerfile")


def submit_conf(settings: Settings) -> dict[str, str]:
    """Spark settings shared by both tiers' submissions, sizes aside."""
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"s3a://{settings.buckets.events}/",
        "spark.ui.prometheus.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }


def job_resources(settings: Settings) -> SparkResources:
    """What each job asks for, from ``dataplatform:spark``."""
    spark = settings.spark
    return SparkResources(
        driver_cores=spark.driver_cores,
        driver_memory_mib=memory_mib(spark.driver_memory),
        executor_cores=spark.executor_cores,
        executor_memory_mib=memory_mib(spark.executor_memory),
        min_executors=spark.min_executors,
        max_executors=spark.max_executors,
    )
