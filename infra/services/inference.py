"""The inference service: serves the live model from the registry in MinIO."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pydantic import Field, model_validator

from infra.services.base import Context, Service, ServiceSpec
from infra.services.common import defaults, project_image, resources, secret_path
from infra.services.minio import Minio
from infra.services.redis import Redis, RedisCredentials
from infra.settings import ConfigModel, Section, Settings, keyed
from infra.targets import Target
from infra.workload import (
    Autoscaling,
    File,
    Metrics,
    Port,
    Workload,
    http_check,
)

PORT = 3000
NAME = "inference"
USER = 10001


class InferenceSettings(ConfigModel):
    replicas: int = Field(2, ge=1, le=100)
    max_replicas: int = Field(6, ge=1, le=100)
    model_name: str = "churn"
    poll_seconds: int = Field(15, ge=1, le=3600)
    max_batch: int = Field(256, ge=1, le=10000)

    @model_validator(mode="after")
    def _replica_range(self) -> InferenceSettings:
        if self.replicas > self.max_replicas:
            raise keyed("replicas", f"{self.replicas} is above maxReplicas {self.max_replicas}")
        return self


CONFIG = Section("inference", InferenceSettings, InferenceSettings())


@dataclass(frozen=True)
class InferenceArgs:
    settings: Settings
    redis_host: str
    redis_port: int
    redis: RedisCredentials
    s3_endpoint: str
    s3_access_key: pulumi.Output[str]
    s3_secret_key: pulumi.Output[str]


class Inference(Service):
    """FastAPI + ONNX Runtime on port 3000.

    Defaults: read-only access to the models bucket only (its own MinIO
    user), online features from Redis, two replicas behind an autoscaler
    and a disruption budget in prod.
    """

    url: str

    def __init__(
        self, name: str, args: InferenceArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Inference", name, None, opts)
        settings = args.settings
        conf = CONFIG.of(settings)
        workload = Workload(
            name=NAME,
            image=project_image(settings, NAME, "services/inference", "services/inference/Dockerfile"),
            user=USER,
            group=USER,
            env={
                "INFERENCE_PORT": str(PORT),
                "INFERENCE_REDIS_URL": f"redis://{args.redis_host}:{args.redis_port}/0",
                "INFERENCE_REDIS_USERNAME": args.redis.username,
                "INFERENCE_REDIS_PASSWORD_FILE": secret_path("redis-password"),
                "INFERENCE_S3_ENDPOINT": args.s3_endpoint,
                "INFERENCE_S3_ACCESS_KEY_FILE": secret_path("s3-access-key"),
                "INFERENCE_S3_SECRET_KEY_FILE": secret_path("s3-secret-key"),
                "INFERENCE_MODELS_BUCKET": settings.buckets.models,
                "INFERENCE_MODEL_NAME": conf.model_name,
                "INFERENCE_POLL_SECONDS": str(conf.poll_seconds),
                "INFERENCE_MAX_BATCH": str(conf.max_batch),
            },
            files=(
                File(secret_path("redis-password"), args.redis.password, secret=True),
                File(secret_path("s3-access-key"), args.s3_access_key, secret=True),
                File(secret_path("s3-secret-key"), args.s3_secret_key, secret=True),
            ),
            ports=(Port("http", PORT, host_port=settings.host_port(NAME)),),
            replicas=conf.replicas,
            autoscaling=Autoscaling(conf.replicas, conf.max_replicas),
            health=http_check(PORT, "/healthz", start_seconds=15),
            # Not ready while the published model cannot be loaded, or Redis
            # is down; alive as long as the process answers.
            readiness=http_check(PORT, "/readyz"),
            metrics=Metrics(PORT),
            depends_on=("redis", "minio-init"),
            talks_to=("redis", "minio"),
            resources=resources(settings, NAME, defaults("250m", "256Mi", "1Gi")),
        )
        self.workload = workload
        self.scraped = [workload]
        self.deployment = target.deploy(workload, self)
        self.url = f"http://{self.deployment.host}:{PORT}"
        self.register_outputs({"url": self.url})


def build(ctx: Context) -> Inference:
    redis = ctx.service("redis", Redis)
    creds = ctx.service("minio", Minio).credentials[NAME]
    args = InferenceArgs(
        ctx.settings,
        redis_host=redis.host,
        redis_port=redis.port,
        redis=redis.credentials[NAME],
        s3_endpoint=ctx.service("minio", Minio).endpoint,
        s3_access_key=creds.access_key,
        s3_secret_key=creds.secret_key,
    )
    return Inference(NAME, args, ctx.target, ctx.opts)


SPEC = ServiceSpec(
    name=NAME,
    build=build,
    sections=(CONFIG,),
    host_ports={NAME: PORT},
    images={NAME: None},
    workloads=(NAME,),
    s3_access={"models": "read"},
)
