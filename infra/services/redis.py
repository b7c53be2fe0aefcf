"""Redis: the online feature store and the gateway's rate-limit counters."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.services.common import defaults, generated_secret, resources, secret_path
from infra.settings import Settings
from infra.targets import Target
from infra.workload import File, HealthCheck, Port, ProbeKind, Volume, Workload

PORT = 6379
NAME = "redis"


@dataclass(frozen=True)
class RedisArgs:
    settings: Settings


class Redis(pulumi.ComponentResource):
    """One Redis server with a generated password and AOF persistence.

    Defaults: password required (generated, never in argv or env: the whole
    config file is a secret file), append-only file fsynced every second on
    a persistent volume, dangerous admin commands renamed away, runs as the
    image's ``redis`` user (999).
    """

    password: pulumi.Output[str]
    host: str
    port: int

    def __init__(
        self, name: str, args: RedisArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Redis", name, None, opts)
        settings = args.settings
        self.password = generated_secret("redis-password", self)
        config = self.password.apply(
            lambda pw: "\n".join(
                [
                    f"port {PORT}",
                    "bind * -::*",
                    "protected-mode no",
                    f'requirepass "{pw}"',
                    "dir /data",
                    "appendonly yes",
                    "appendfsync everysec",
                    'rename-command FLUSHALL ""',
                    'rename-command DEBUG ""',
                    'rename-command CONFIG ""',
                    "",
                ]
            )
        )
        ping = (
            "sh",
            "-c",
            f'REDISCLI_AUTH="$(cat {secret_path("password")})" redis-cli -p {PORT} ping | grep -q PONG',
        )
        workload = Workload(
            name=NAME,
            image=settings.images.redis,
            user=999,
            group=999,
            command=("redis-server",),
            args=(secret_path("redis.conf"),),
            files=(
                File(secret_path("redis.conf"), config, secret=True),
                File(secret_path("password"), self.password, secret=True),
            ),
            ports=(Port("redis", PORT, host_port=settings.host_ports.redis),),
            volumes=(Volume("data", "/data", settings.storage.redis),),
            health=HealthCheck(ProbeKind.EXEC, ping, interval_seconds=5, retries=10, start_seconds=5),
            resources=resources(settings, NAME, defaults("100m", "256Mi", "512Mi")),
        )
        self.deployment = target.deploy(workload, self)
        self.host = self.deployment.host
        self.port = PORT
        self.register_outputs({"host": self.host, "port": self.port})


__all__ = ["Redis", "RedisArgs"]
