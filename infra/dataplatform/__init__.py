"""dataplatform: a data/ML platform (Spark, Redis, MinIO, an API gateway, an
inference service, Prometheus, Grafana, Alertmanager) as one Pulumi component,
deployed on a Docker engine or a Kubernetes cluster.

    from dataplatform import DataPlatform, DataPlatformArgs

    DataPlatform("analytics", DataPlatformArgs(config={"target": "kubernetes", ...}, namespace="analytics"))

docs/library.md describes the arguments, the outputs and the defaults.
"""

from dataplatform.platform import DataPlatform, DataPlatformArgs

__all__ = ["DataPlatform", "DataPlatformArgs"]
