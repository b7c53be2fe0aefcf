"""The inference service: serves the live model from the registry in MinIO."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pydantic import Field

from dataplatform.config import Buckets, Resources, Scaling, Section
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.services.common import secret_path
from dataplatform.services.minio import Minio
from dataplatform.services.redis import Redis, RedisCredentials
from dataplatform.targets import Target
from dataplatform.workload import Autoscaling, File, Metrics, Port, ProjectImage, Workload, http_check

PORT = 3000
NAME = "inference"
USER = 10001


class InferenceSettings(Scaling):
    model_name: str = "churn"
    poll_seconds: int = Field(15, ge=1, le=3600)
    max_batch: int = Field(256, ge=1, le=10000)


CONFIG = Section("inference", InferenceSettings, InferenceSettings())
DEPLOY = Deploy(ProjectImage.of_service(NAME), Resources.of("250m", "256Mi", "1Gi"), host_port=PORT)


@dataclass(frozen=True)
class InferenceArgs:
    """What the inference service is built from: where Redis and MinIO are
    and its credentials for them; the rest has defaults."""

    redis_host: str
    redis_port: int
    redis: RedisCredentials
    s3_endpoint: str
    s3_access_key: pulumi.Output[str]
    s3_secret_key: pulumi.Output[str]
    config: InferenceSettings = field(default_factory=InferenceSettings)
    models_bucket: str = Buckets().models
    deploy: Deploy = DEPLOY


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
        conf, deploy = args.config, args.deploy
        workload = Workload(
            name=NAME,
            image=deploy.image,
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
                "INFERENCE_MODELS_BUCKET": args.models_bucket,
                "INFERENCE_MODEL_NAME": conf.model_name,
                "INFERENCE_POLL_SECONDS": str(conf.poll_seconds),
                "INFERENCE_MAX_BATCH": str(conf.max_batch),
            },
            files=(
                File(secret_path("redis-password"), args.redis.password, secret=True),
                File(secret_path("s3-access-key"), args.s3_access_key, secret=True),
                File(secret_path("s3-secret-key"), args.s3_secret_key, secret=True),
            ),
            ports=(Port("http", PORT, host_port=deploy.host_port),),
            replicas=conf.replicas,
            autoscaling=Autoscaling(conf.replicas, conf.max_replicas),
            health=http_check(PORT, "/healthz", start_seconds=15),
            # Not ready while the published model cannot be loaded, or Redis
            # is down; alive as long as the process answers.
            readiness=http_check(PORT, "/readyz"),
            metrics=Metrics(PORT),
            depends_on=("redis", "minio-init"),
            talks_to=("redis", "minio:s3"),
            resources=deploy.resources,
        )
        self.workload = workload
        self.scraped = [workload]
        self.deployment = target.deploy(workload, self)
        self.url = f"http://{self.deployment.host}:{PORT}"
        self.register_outputs({"url": self.url})


def build(ctx: Context) -> Inference:
    redis = ctx.service("redis", Redis)
    creds = ctx.service("minio", Minio).credentials[NAME]
    settings = ctx.settings
    args = InferenceArgs(
        redis_host=redis.host,
        redis_port=redis.port,
        redis=redis.credentials[NAME],
        s3_endpoint=ctx.service("minio", Minio).endpoint,
        s3_access_key=creds.access_key,
        s3_secret_key=creds.secret_key,
        config=CONFIG.of(settings),
        models_bucket=settings.buckets.models,
        deploy=ctx.deploy(NAME, DEPLOY),
    )
    return Inference(ctx.target.names.of(NAME), args, ctx.target, ctx.opts)


SPEC = ServiceSpec.single(NAME, build, DEPLOY, sections=(CONFIG,), s3_access={"models": "read"})
