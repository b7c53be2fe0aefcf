"""The Spark History Server: the UI and REST API of finished Spark applications,
read from the event logs every driver writes to the events bucket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from dataplatform.config import Resources
from dataplatform.services.base import Context, Service, ServiceSpec
from dataplatform.services.common import secret_path
from dataplatform.services.minio import API_PORT, Minio
from dataplatform.services.spark import Spark
from dataplatform.targets import Target
from dataplatform.workload import File, ImageRef, Port, Workload, http_check
from jobs.launch import SPARK_UID

NAME = "spark-history"
PORT = 18080
RESOURCES = Resources.of("100m", "512Mi", "1Gi")
PROPERTIES = secret_path("spark-history.conf")
# How often new and finished logs are picked up (Spark's default is 10 s).
UPDATE_INTERVAL = "5s"


@dataclass(frozen=True)
class SparkHistoryArgs:
    """Where the event logs are and how to read them: the Spark image, the
    S3 endpoint and a MinIO user that may read the events bucket."""

    image: ImageRef
    s3_endpoint: str
    events_bucket: str
    access_key: pulumi.Input[str]
    secret_key: pulumi.Input[str]
    resources: Resources = RESOURCES
    host_port: int | None = PORT


def properties(args: SparkHistoryArgs) -> pulumi.Output[str]:
    """The server's whole configuration, a secret file (it holds the key):
    passed as ``--properties-file``, so no credential is in its arguments or
    environment."""
    s3a = "spark.hadoop.fs.s3a."
    settings = {
        "spark.history.fs.logDirectory": f"s3a://{args.events_bucket}/",
        "spark.history.fs.update.interval": UPDATE_INTERVAL,
        "spark.history.ui.port": str(PORT),
        s3a + "impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        s3a + "endpoint": args.s3_endpoint,
        s3a + "endpoint.region": "us-east-1",
        s3a + "path.style.access": "true",
        s3a + "connection.ssl.enabled": str(args.s3_endpoint.startswith("https")).lower(),
        s3a + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        s3a + "buffer.dir": "/tmp/s3a",
        "spark.local.dir": "/tmp/spark-local",
    }
    plain = "".join(f"{key} {value}\n" for key, value in settings.items())
    return pulumi.Output.secret(
        pulumi.Output.all(args.access_key, args.secret_key).apply(
            lambda keys: plain + f"{s3a}access.key {keys[0]}\n{s3a}secret.key {keys[1]}\n"
        )
    )


class SparkHistory(Service):
    """One History Server on 18080, listing every application whose event log
    is in the events bucket, finished or running.

    Defaults: the Spark image as its user (185), read-only root filesystem,
    a MinIO user of its own that may only read the events bucket, and no
    exposure beyond the platform: a loopback port in dev, and in prod a
    ClusterIP Service reached by ``kubectl port-forward``, so Kubernetes
    RBAC decides who reads the applications' configuration and arguments.
    """

    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: SparkHistoryArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:SparkHistory", name, None, opts)
        workload = Workload(
            name=NAME,
            image=args.image,
            user=SPARK_UID,
            group=SPARK_UID,
            command=("spark-class", "org.apache.spark.deploy.history.HistoryServer"),
            args=("--properties-file", PROPERTIES),
            env={"SPARK_NO_DAEMONIZE": "true", "SPARK_DAEMON_MEMORY": "512m"},
            files=(File(PROPERTIES, properties(args), secret=True),),
            ports=(Port("http", PORT, host_port=args.host_port),),
            health=http_check(PORT, "/api/v1/version", start_seconds=60),
            depends_on=("minio",),
            talks_to=("minio:s3",),
            resources=args.resources,
        )
        self.workload = workload
        self.deployment = target.deploy(workload, self)
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"spark_history_url": self.url}


def build(ctx: Context) -> SparkHistory:
    minio = ctx.service("minio", Minio)
    spark = ctx.service("spark", Spark)
    settings = ctx.settings
    creds = minio.credentials[NAME]
    args = SparkHistoryArgs(
        image=spark.args.image,
        s3_endpoint=f"http://{minio.deployment.qualified_host}:{API_PORT}",
        events_bucket=settings.buckets.events,
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        resources=settings.resources_for(NAME, RESOURCES),
        host_port=settings.host_port("spark_history"),
    )
    return SparkHistory(ctx.target.names.of(NAME), args, ctx.target, ctx.opts)


SPEC = ServiceSpec(
    name=NAME,
    build=build,
    host_ports={"spark_history": PORT},
    workloads=(NAME,),
    s3_access={"events": "read"},
)
