"""The inference service: serves the live model from the registry in MinIO."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.services.common import defaults, project_image, resources, secret_path
from infra.services.redis import RedisCredentials
from infra.settings import Settings
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


@dataclass(frozen=True)
class InferenceArgs:
    settings: Settings
    redis_host: str
    redis_port: int
    redis: RedisCredentials
    s3_endpoint: str
    s3_access_key: pulumi.Output[str]
    s3_secret_key: pulumi.Output[str]


class Inference(pulumi.ComponentResource):
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
        conf = settings.inference
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
            ports=(Port("http", PORT, host_port=settings.host_ports.inference),),
            replicas=conf.replicas,
            autoscaling=Autoscaling(conf.replicas, conf.max_replicas),
            health=http_check(PORT, "/healthz", start_seconds=15),
            metrics=Metrics(PORT),
            depends_on=("redis", "minio-init"),
            talks_to=("redis", "minio"),
            resources=resources(settings, NAME, defaults("250m", "256Mi", "1Gi")),
        )
        self.workload = workload
        self.deployment = target.deploy(workload, self)
        self.url = f"http://{self.deployment.host}:{PORT}"
        self.register_outputs({"url": self.url})
