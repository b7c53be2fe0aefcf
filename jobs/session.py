"""SparkSession construction shared by spark-submit, the local runner and tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config import Settings, spark_conf

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def _local_python_workers() -> None:
    # Functions shipped to executors (e.g. the Redis writer) are pickled by
    # reference to their module, so Python workers must import ``jobs`` and
    # its dependencies too. The Spark image sets both up; a local master's
    # workers use this interpreter and inherit PYTHONPATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    current = os.environ.get("PYTHONPATH", "")
    entries = [p for p in current.split(os.pathsep) if p]
    if PACKAGE_PARENT not in entries:
        os.environ["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT, *entries])


def _with_delta_jars(builder: SparkSession.Builder) -> SparkSession.Builder:
    # The Spark image carries Delta's jars; pyspark's wheel does not, so a
    # local master resolves the ones matching the installed delta-spark from
    # Maven, once, into a cache that later sessions reuse.
    from delta import configure_spark_with_delta_pip

    ivy = os.environ.get("DP_IVY_CACHE", str(Path.home() / ".cache" / "dataplatform" / "ivy"))
    return configure_spark_with_delta_pip(builder.config("spark.jars.ivy", ivy))


def build_session(
    app_name: str,
    settings: Settings,
    *,
    master: str | None = None,
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Create (or reuse) the session; ``master`` is None under spark-submit."""
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        _local_python_workers()
        builder = _with_delta_jars(builder.master(master))
    for key, value in {**spark_conf(settings), **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("DP_SPARK_LOG_LEVEL", "WARN"))
    return spark
