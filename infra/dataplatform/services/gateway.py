"""The API gateway: authenticates, rate-limits and routes to inference."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pulumi
from pydantic import Field, model_validator

from dataplatform.config import ConfigModel, Resources, Scaling, Section, keyed
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.services.common import generated_secret, secret_path
from dataplatform.services.inference import Inference
from dataplatform.services.redis import Redis, RedisCredentials
from dataplatform.targets import Target
from dataplatform.workload import (
    Autoscaling,
    Exposure,
    File,
    HealthCheck,
    IngressRoute,
    IngressTls,
    Metrics,
    Port,
    ProbeKind,
    ProjectImage,
    Workload,
)

PORT = 8080
SERVICE_PORT = 80
NAME = "gateway"
USER = 10001
PUBLIC_PATHS = ("/v1",)


class IngressSettings(ConfigModel):
    host: str
    class_name: str | None = None
    # The Secret holding the certificate; without it the Ingress serves
    # plain HTTP. Filled by a cert-manager Certificate from ``tls_issuer``,
    # or from ``tls_certificate``/``tls_private_key`` (PEM, set them as
    # secrets), or, with neither, made by the caller.
    tls_secret_name: str | None = None
    tls_issuer: str | None = None
    tls_issuer_kind: Literal["ClusterIssuer", "Issuer"] = "ClusterIssuer"
    tls_certificate: str | None = None
    tls_private_key: str | None = None
    # The ingress controller's namespace: with a ClusterIP Service its pods,
    # and monitoring, are the only sources the gateway admits.
    controller_namespace: str = "ingress-nginx"

    @model_validator(mode="after")
    def _tls(self) -> IngressSettings:
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            missing = "tlsPrivateKey" if self.tls_private_key is None else "tlsCertificate"
            raise keyed(missing, "tlsCertificate and tlsPrivateKey are given together")
        if self.tls_issuer and self.tls_certificate:
            raise keyed("tlsIssuer", "the certificate comes from tlsIssuer or from tlsCertificate, not both")
        if (self.tls_issuer or self.tls_certificate) and not self.tls_secret_name:
            raise keyed("tlsSecretName", "name the Secret the certificate goes into")
        return self

    def tls(self) -> IngressTls | None:
        if not self.tls_secret_name:
            return None
        secret = pulumi.Output.secret
        return IngressTls(
            self.tls_secret_name,
            issuer=self.tls_issuer,
            issuer_kind=self.tls_issuer_kind,
            certificate=self.tls_certificate,
            private_key=secret(self.tls_private_key) if self.tls_private_key else None,
        )


class GatewaySettings(Scaling):
    rate_limit: int = Field(100, ge=1)
    rate_window_seconds: int = Field(60, ge=1, le=86400)
    fail_mode: Literal["open", "closed"] = "open"
    service_type: Literal["ClusterIP", "LoadBalancer", "NodePort"] = "ClusterIP"
    ingress: IngressSettings | None = None
    # Namespaces whose pods may call the gateway directly (a ClusterIP
    # Service), beside the ingress controller's.
    client_namespaces: list[str] = []
    # Raise it to rotate the API key: a new key is generated, the pods roll
    # onto it and the old key stops working.
    api_key_rotation: int = Field(0, ge=0)


CONFIG = Section("gateway", GatewaySettings, GatewaySettings())
DEPLOY = Deploy(ProjectImage.of_service(NAME), Resources.of("100m", "64Mi", "256Mi"), host_port=PORT)


@dataclass(frozen=True)
class GatewayArgs:
    """What the gateway is built from: its upstream, where Redis is and its
    credentials there; the rest has defaults."""

    upstream_url: str
    redis_host: str
    redis_port: int
    redis: RedisCredentials
    config: GatewaySettings = field(default_factory=GatewaySettings)
    deploy: Deploy = DEPLOY


class Gateway(Service):
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
        conf, deploy = args.config, args.deploy
        # No keeper until the first rotation, so stacks made before this
        # setting keep their key.
        rotation = {"rotation": str(conf.api_key_rotation)} if conf.api_key_rotation else None
        self.api_key = generated_secret(target.names.of("gateway-api-key"), self, length=40, keepers=rotation)
        health = HealthCheck(
            ProbeKind.HTTP,
            ("/usr/local/bin/gateway", "--healthcheck"),
            port=PORT,
            path="/healthz",
            interval_seconds=5,
        )
        # Ready: inference and Redis answer. Not a liveness check: restarting
        # the gateway would not bring either back.
        readiness = replace(health, path="/readyz")
        # Only the public API goes through the Ingress; /healthz, /readyz and
        # /metrics stay inside the cluster.
        ingress = (
            IngressRoute(conf.ingress.host, conf.ingress.tls(), conf.ingress.class_name, paths=PUBLIC_PATHS)
            if conf.ingress
            else None
        )
        # A ClusterIP gateway admits the ingress controller's pods and the
        # namespaces named; LoadBalancer and NodePort clients come from
        # outside the cluster, so those admit any source.
        controller = [conf.ingress.controller_namespace] if conf.ingress else []
        sources = (
            tuple(dict.fromkeys([*controller, *conf.client_namespaces]))
            if conf.service_type == "ClusterIP"
            else None
        )
        workload = Workload(
            name=NAME,
            image=deploy.image,
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
                # Set only behind TLS (its default is off), so stacks without
                # an Ingress see no change.
                **({"GATEWAY_HTTPS_REDIRECT": "true"} if ingress and ingress.tls else {}),
            },
            files=(
                File(secret_path("redis-password"), args.redis.password, secret=True),
                File(secret_path("api-keys"), self.api_key.apply(lambda k: k + "\n"), secret=True),
            ),
            ports=(Port("http", PORT, host_port=deploy.host_port, service_port=SERVICE_PORT),),
            replicas=conf.replicas,
            autoscaling=Autoscaling(conf.replicas, conf.max_replicas),
            health=health,
            readiness=readiness,
            metrics=Metrics(PORT),
            depends_on=("inference", "redis"),
            talks_to=("inference", "redis"),
            exposure=Exposure(conf.service_type, ingress, sources),
            resources=deploy.resources,
        )
        self.workload = workload
        self.scraped = [workload]
        self.deployment = target.deploy(workload, self)
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"gateway_url": self.url}

    def shared_credentials(self) -> dict[str, pulumi.Input[str]]:
        return {"gateway_api_key": self.api_key}


def build(ctx: Context) -> Gateway:
    redis = ctx.service("redis", Redis)
    args = GatewayArgs(
        upstream_url=ctx.service("inference", Inference).url,
        redis_host=redis.host,
        redis_port=redis.port,
        redis=redis.credentials[NAME],
        config=CONFIG.of(ctx.settings),
        deploy=ctx.deploy(NAME, DEPLOY),
    )
    return Gateway(ctx.target.names.of(NAME), args, ctx.target, ctx.opts)


SPEC = ServiceSpec.single(NAME, build, DEPLOY, sections=(CONFIG,))
