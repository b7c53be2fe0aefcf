"""The whole platform: every service, wired together, on the chosen target."""

from __future__ import annotations

import pulumi

from infra.services.alertmanager import Alertmanager, AlertmanagerArgs
from infra.services.common import secret_path
from infra.services.gateway import Gateway, GatewayArgs
from infra.services.grafana import Grafana, GrafanaArgs
from infra.services.inference import Inference, InferenceArgs
from infra.services.minio import Minio, MinioArgs
from infra.services.prometheus import Prometheus, PrometheusArgs
from infra.services.redis import Redis, RedisArgs
from infra.services.spark import Spark, SparkArgs, SparkEnvironment
from infra.services.spark import image as spark_image
from infra.settings import Settings
from infra.targets import Target
from infra.targets.docker import DockerOptions, DockerTarget
from infra.targets.kubernetes import KubernetesOptions, KubernetesTarget
from infra.workload import File
from jobs.launch import DRIVER_ACCOUNT, memory_mib

SPARK_USER = "spark"
INFERENCE_USER = "inference"


def make_target(settings: Settings, stack: str, parent: pulumi.Resource) -> Target:
    """The stack's target, handed only the settings of its own tier."""
    if settings.is_docker:
        return DockerTarget(
            DockerOptions(
                bind_address=settings.bind_address,
                build_images=settings.build_images,
                build_ca_file=settings.build_ca_file,
                purge_on_destroy=settings.purge_on_destroy,
            ),
            stack,
            parent,
        )
    return KubernetesTarget(
        KubernetesOptions(
            cluster=settings.kubernetes,
            image_registry=settings.image_registry or "",
            storage_class=settings.storage.storage_class,
            purge_on_destroy=settings.purge_on_destroy,
        ),
        stack,
        parent,
    )


class Platform(pulumi.ComponentResource):
    """Spark, Redis, MinIO, the gateway, inference, Prometheus and Grafana.

    Services reach each other by name (``redis``, ``minio``, ...) in both
    tiers. Each service gets only the credentials it needs: Spark a MinIO
    user with read-write access to the data buckets, inference a user that
    can only read the models bucket, the gateway no MinIO access at all.
    """

    target: Target

    def __init__(
        self, name: str, settings: Settings, stack: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.settings = settings
        self.target = make_target(settings, stack, self)
        target = self.target
        buckets = settings.buckets

        self.redis = Redis("redis", RedisArgs(settings), target, child)
        self.minio = Minio(
            "minio",
            MinioArgs(
                settings,
                users={
                    SPARK_USER: {
                        buckets.raw: "readwrite",
                        buckets.lake: "readwrite",
                        buckets.models: "readwrite",
                        buckets.events: "readwrite",
                    },
                    INFERENCE_USER: {buckets.models: "read"},
                },
            ),
            target,
            child,
        )
        spark_creds = self.minio.credentials[SPARK_USER]
        spark_redis = self.redis.credentials["spark"]
        self.spark_env = SparkEnvironment(
            env={
                "DP_S3_ENDPOINT": self.minio.endpoint,
                "DP_S3_ACCESS_KEY_FILE": secret_path("s3-access-key"),
                "DP_S3_SECRET_KEY_FILE": secret_path("s3-secret-key"),
                "DP_REDIS_HOST": self.redis.host,
                "DP_REDIS_PORT": str(self.redis.port),
                "DP_REDIS_USERNAME": spark_redis.username,
                "DP_REDIS_PASSWORD_FILE": secret_path("redis-password"),
                "DP_RAW_BUCKET": buckets.raw,
                "DP_LAKE_BUCKET": buckets.lake,
                "DP_MODELS_BUCKET": buckets.models,
                "DP_EVENTS_BUCKET": buckets.events,
            },
            files=(
                File(secret_path("s3-access-key"), spark_creds.access_key, secret=True),
                File(secret_path("s3-secret-key"), spark_creds.secret_key, secret=True),
                File(secret_path("redis-password"), spark_redis.password, secret=True),
            ),
            talks_to=("minio", "redis"),
        )
        self.spark = Spark(
            "spark",
            SparkArgs(settings, self.spark_env, jobs_depend_on=(self.minio,)),
            target,
            child,
        )
        inference_creds = self.minio.credentials[INFERENCE_USER]
        self.inference = Inference(
            "inference",
            InferenceArgs(
                settings,
                redis_host=self.redis.host,
                redis_port=self.redis.port,
                redis=self.redis.credentials["inference"],
                s3_endpoint=self.minio.endpoint,
                s3_access_key=inference_creds.access_key,
                s3_secret_key=inference_creds.secret_key,
            ),
            target,
            child,
        )
        self.gateway = Gateway(
            "gateway",
            GatewayArgs(
                settings,
                upstream_url=self.inference.url,
                redis_host=self.redis.host,
                redis_port=self.redis.port,
                redis=self.redis.credentials["gateway"],
            ),
            target,
            child,
        )
        self.alertmanager = Alertmanager("alertmanager", AlertmanagerArgs(settings), target, child)
        scraped = [
            self.minio.server,
            *self.spark.workloads,
            self.inference.workload,
            self.gateway.workload,
            self.alertmanager.workload,
        ]
        self.prometheus = Prometheus(
            "prometheus",
            PrometheusArgs(settings, scraped, alertmanager=self.alertmanager.workload),
            target,
            child,
        )
        self.grafana = (
            Grafana(
                "grafana",
                GrafanaArgs(settings, prometheus_url="http://prometheus:9090"),
                target,
                child,
            )
            if settings.grafana.enabled
            else None
        )
        target.finalize()

        spark = settings.spark
        self.spark_submit: dict[str, object] = {
            "tier": "dev" if settings.is_docker else "prod",
            "image": target.image_name(spark_image(settings))
            if not settings.is_docker
            else (spark_image(settings).override or spark_image(settings).reference()),
            "master_url": self.spark.master_url,
            "env": self.spark_env.env,
            # Jobs submitted from the CLI ask for what the stack's jobs ask for.
            "conf": self.spark.submit_conf,
            "resources": self.spark.job_resources.to_output(),
            "raw_bucket": buckets.raw,
        }
        if settings.is_docker:
            assert isinstance(target, DockerTarget)
            self.spark_submit["network"] = target.prefix
            self.spark_submit["master_ui_url"] = self.spark.ui_url
            self.spark_submit["s3_endpoint"] = target.published_url(self.minio.server, "s3")
            self.spark_submit["workers"] = {
                "count": spark.workers,
                "cores": spark.worker_cores,
                "memoryMib": memory_mib(spark.worker_memory),
            }
        else:
            self.spark_submit["namespace"] = settings.kubernetes.namespace
            self.spark_submit["service_account"] = DRIVER_ACCOUNT
            self.spark_submit["secret_name"] = self.spark.secret_name
        self.credentials = pulumi.Output.secret(
            {
                "s3_access_key": spark_creds.access_key,
                "s3_secret_key": spark_creds.secret_key,
                "redis_username": spark_redis.username,
                "redis_password": spark_redis.password,
                "gateway_api_key": self.gateway.api_key,
            }
        )
        self.register_outputs(
            {
                "gateway_url": self.gateway.url,
                "spark_master_url": self.spark.master_url,
            }
        )
