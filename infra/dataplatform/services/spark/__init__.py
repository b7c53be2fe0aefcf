"""Spark: the processing engine, and the jobs the stack declares.

The one service whose shape differs between tiers (a standalone cluster on
one host, an operator on Kubernetes), with a provisioner for each: ``standalone`` (dev: a master, workers and
``spark-submit`` containers, on any target) and ``operator`` (prod: the
Spark Operator and SparkApplications, on a ``ClusterTarget``). Both run the
same image, the same ``jobs/`` code and the same S3A/Redis settings; this
module picks one by what the target can do.
"""

from __future__ import annotations

from typing import Any

import pulumi

from dataplatform.services.base import Context, Service, ServiceSpec
from dataplatform.services.common import secret_path
from dataplatform.services.minio import API_PORT, Minio
from dataplatform.services.redis import Redis
from dataplatform.services.spark import operator, standalone
from dataplatform.services.spark.shared import (
    CONFIG,
    JOBS,
    NAME,
    OPERATOR,
    SparkArgs,
    SparkEnvironment,
    SparkJobSettings,
    SparkOperatorSettings,
    SparkSettings,
    StreamingSettings,
    Workers,
    check,
    images_used,
    pin_chart,
    spark_args,
)
from dataplatform.targets import ClusterTarget, Target
from dataplatform.workload import File, Workload
from jobs.conventions import DRIVER_ACCOUNT

__all__ = [
    "CONFIG",
    "JOBS",
    "OPERATOR",
    "SPEC",
    "Spark",
    "SparkArgs",
    "SparkEnvironment",
    "SparkJob",
    "SparkJobSettings",
    "SparkOperatorSettings",
    "SparkSettings",
    "StreamingSettings",
    "Workers",
    "spark_args",
]


class SparkJob(pulumi.ComponentResource):
    """One job of ``jobs/`` declared in the stack.

    Dev: a one-shot ``spark-submit`` container, run when the stack creates
    it (schedules are prod-only). Prod: a SparkApplication, or a
    ScheduledSparkApplication with ``schedule``, with driver and executor
    requests and limits, dynamic allocation with shuffle tracking, a
    bounded restart policy, S3A settings and Prometheus metrics. With
    ``stream`` (the streaming job) it runs until it is stopped: dev keeps
    its container up and restarts it on failure, prod has the operator
    restart it ``stream.restarts`` times.
    """

    def __init__(
        self,
        name: str,
        job: SparkJobSettings,
        args: SparkArgs,
        target: Target,
        depends_on: list[pulumi.Resource] | None = None,
        secret_name: pulumi.Output[str] | None = None,
        stream: StreamingSettings | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dataplatform:index:SparkJob", name, None, opts)
        if isinstance(target, ClusterTarget):
            assert secret_name is not None
            restarts = stream.restarts if stream else None
            operator.deploy_job(job, args, target, self, secret_name, depends_on or [], restarts)
        else:
            standalone.deploy_job(job, args, target, self, continuous=stream is not None)
        self.register_outputs({})


class Spark(Service):
    """Spark in either tier, and the jobs the stack declares.

    Dev: a standalone master (7077, UI 8080) and ``spark.workers`` workers
    that register with it. Prod: the Spark Operator from its pinned Helm
    chart with the webhook on and the platform namespace watched, a driver
    service account allowed to manage its executors, and network policies
    that let Spark pods reach MinIO, Redis and the API server only.
    """

    master_url: str
    ui_url: pulumi.Output[str]
    workloads: list[Workload]

    def __init__(
        self, name: str, args: SparkArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Spark", name, None, opts)
        self.args = args
        self.target = target
        self.workloads = []
        runtime: list[pulumi.Resource] = []
        secret_name: pulumi.Output[str] | None = None
        if isinstance(target, ClusterTarget):
            runtime, secret_name = operator.deploy_runtime(args, target, self)
            self.pod_scrapes = operator.pod_scrapes(args)
            self.master_url = operator.MASTER_URL
            self.ui_url = pulumi.Output.from_input(operator.UI_HINT)
        else:
            self.workloads, self.ui_url = standalone.deploy_cluster(args, target, self)
            self.master_url = standalone.MASTER_URL
        self.scraped = list(self.workloads)
        self.secret_name = secret_name
        # The declared jobs, then the stream, which is declared like one.
        declared: list[tuple[SparkJobSettings, StreamingSettings | None]] = [(job, None) for job in args.jobs]
        if args.stream is not None:
            declared.append((args.stream.job(), args.stream))
        self.jobs = [
            SparkJob(
                target.names.of(f"job-{job.name}"),
                job,
                args,
                target,
                depends_on=runtime,
                secret_name=secret_name,
                stream=stream,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.jobs_depend_on)),
            )
            for job, stream in declared
        ]
        self.register_outputs({"master_url": self.master_url})

    def submit_info(self) -> dict[str, object]:
        """What ``python -m jobs submit`` needs to launch a job like the stack's own."""
        args, target = self.args, self.target
        info: dict[str, object] = {
            "tier": "prod" if isinstance(target, ClusterTarget) else "dev",
            "image": target.image_name(args.image)
            if isinstance(target, ClusterTarget)
            else (args.image.override or args.image.reference()),
            "master_url": self.master_url,
            "env": args.environment.env,
            # Jobs submitted from the CLI ask for what the stack's jobs ask for.
            "conf": args.conf,
            "resources": args.job_resources.to_output(),
            "raw_bucket": args.raw_bucket,
        }
        if isinstance(target, ClusterTarget):
            info["namespace"] = args.namespace
            info["service_account"] = DRIVER_ACCOUNT
            info["secret_name"] = self.secret_name
        else:
            workers = args.workers
            info["network"] = target.network_name
            info["master_ui_url"] = self.ui_url
            info["s3_endpoint"] = args.s3_url
            info["workers"] = {
                "count": workers.count,
                "cores": workers.cores,
                "memoryMib": workers.memory_mib,
            }
        return info

    def outputs(self) -> dict[str, Any]:
        return {
            "spark_master_url": self.master_url,
            "spark_ui_url": self.ui_url,
            "spark_submit": self.submit_info(),
        }

    def shared_credentials(self) -> dict[str, pulumi.Input[str]]:
        return dict(self.args.credentials)


def build(ctx: Context) -> Spark:
    """Spark with a MinIO user of its own (the data buckets, read-write) and
    its Redis user, handed to every driver as files."""
    minio = ctx.service("minio", Minio)
    redis = ctx.service("redis", Redis)
    buckets = ctx.settings.buckets
    s3 = minio.credentials[NAME]
    redis_user = redis.credentials[NAME]
    environment = SparkEnvironment(
        env={
            # Names that resolve from the jobs namespace too (prod).
            "DP_S3_ENDPOINT": f"http://{minio.deployment.qualified_host}:{API_PORT}",
            "DP_S3_ACCESS_KEY_FILE": secret_path("s3-access-key"),
            "DP_S3_SECRET_KEY_FILE": secret_path("s3-secret-key"),
            "DP_REDIS_HOST": redis.deployment.qualified_host,
            "DP_REDIS_PORT": str(redis.port),
            "DP_REDIS_USERNAME": redis_user.username,
            "DP_REDIS_PASSWORD_FILE": secret_path("redis-password"),
            "DP_RAW_BUCKET": buckets.raw,
            "DP_LAKE_BUCKET": buckets.lake,
            "DP_MODELS_BUCKET": buckets.models,
            "DP_EVENTS_BUCKET": buckets.events,
        },
        files=(
            File(secret_path("s3-access-key"), s3.access_key, secret=True),
            File(secret_path("s3-secret-key"), s3.secret_key, secret=True),
            File(secret_path("redis-password"), redis_user.password, secret=True),
        ),
        talks_to=("minio:s3", "redis"),
    )
    args = spark_args(
        ctx.settings,
        environment,
        jobs_depend_on=(minio,),
        s3_url=minio.s3_url,
        credentials={
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
            "redis_username": redis_user.username,
            "redis_password": redis_user.password,
        },
    )
    return Spark(ctx.target.names.of(NAME), args, ctx.target, ctx.opts)


SPEC = ServiceSpec(
    name=NAME,
    build=build,
    sections=(CONFIG, JOBS, OPERATOR),
    host_ports={"spark_master": 7077, "spark_ui": 8081},
    images={NAME: None},
    workloads=("spark-master", "spark-worker"),
    s3_access={"raw": "readwrite", "lake": "readwrite", "models": "readwrite", "events": "readwrite"},
    check=check,
    images_used=images_used,
    pin_artifacts=pin_chart,
)
