"""The API gateway: authenticates, rate-limits and routes to inference."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.services.common import defaults, generated_secret, project_image, resources, secret_path
from infra.services.redis import RedisCredentials
from infra.settings import Settings
from infra.targets import Target
from infra.workload import (
    Autoscaling,
    Exposure,
    File,
    HealthCheck,
    IngressRoute,
    Metrics,
    Port,
    ProbeKind,
    Workload,
)

PORT = 8080
SERVICE_PORT = 80
NAME = "gateway"
USER = 10001


@dataclass(frozen=True)
class GatewayArgs:
    settings: Settings
    upstream_url: str
    redis_host: str
    redis_port: int
    redis: RedisCredentials


class Gateway(pulumi.ComponentResource):
    """The Rust gateway on 8080 (Kubernetes Service port 80).

    Defaults: one generated API key (more can be added to the key file), a
    per-key rate limit kept in Redis with the configured fail mode, the
    only workload reachable from outside the platform: an Ingress with TLS
    when configured, otherwise a ClusterIP Service (prod) or 127.0.0.1 (dev).
    """

    api_key: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: GatewayArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Gateway", name, None, opts)
        settings = args.settings
        conf = settings.gateway
        self.api_key = generated_secret("gateway-api-key", self, length=40)
        health = HealthCheck(
            ProbeKind.HTTP,
            ("/usr/local/bin/gateway", "--healthcheck"),
            port=PORT,
            path="/healthz",
            interval_seconds=5,
        )
        ingress = (
            IngressRoute(conf.ingress.host, conf.ingress.tls_secret_name, conf.ingress.class_name)
            if conf.ingress
            else None
        )
        workload = Workload(
            name=NAME,
            image=project_image(settings, NAME, "services/gateway", "services/gateway/Dockerfile"),
            user=USER,
            group=USER,
            env={
                "GATEWAY_LISTEN": f"0.0.0.0:{PORT}",
                "GATEWAY_UPSTREAM_URL": args.upstream_url,
                "GATEWAY_REDIS_URL": f"redis://{args.redis_host}:{args.redis_port}/1",
                "GATEWAY_REDIS_USERNAME": args.redis.username,
                "GATEWAY_REDIS_PASSWORD_FILE": secret_path("redis-password"),
                "GATEWAY_API_KEYS_FILE": secret_path("api-keys"),
                "GATEWAY_RATE_LIMIT": str(conf.rate_limit),
                "GATEWAY_RATE_WINDOW_SECONDS": str(conf.rate_window_seconds),
                "GATEWAY_RATE_LIMIT_FAIL_MODE": conf.fail_mode,
            },
            files=(
                File(secret_path("redis-password"), args.redis.password, secret=True),
                File(secret_path("api-keys"), self.api_key.apply(lambda k: k + "\n"), secret=True),
            ),
            ports=(Port("http", PORT, host_port=settings.host_ports.gateway, service_port=SERVICE_PORT),),
            replicas=conf.replicas,
            autoscaling=Autoscaling(conf.replicas, conf.max_replicas),
            health=health,
            metrics=Metrics(PORT),
            depends_on=("inference", "redis"),
            talks_to=("inference", "redis"),
            exposure=Exposure(conf.service_type, ingress),
            resources=resources(settings, NAME, defaults("100m", "64Mi", "256Mi")),
        )
        self.workload = workload
        self.deployment = target.deploy(workload, self)
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})
