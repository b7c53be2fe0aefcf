"""Redis: the online feature store and the gateway's rate-limit counters."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
from pydantic import Field

from dataplatform.config import ConfigModel, Resources, Section
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.services.common import generated_secret, secret_path
from dataplatform.targets import Target
from dataplatform.workload import File, HealthCheck, Port, ProbeKind, Workload
from jobs.quantity import memory_bytes

PORT = 6379
NAME = "redis"
FEATURES = "features:*"
RATE_LIMITS = "gateway:ratelimit:*"
# What every client may do on its connection: authenticate (always allowed),
# pick its database, name itself and check liveness. CLIENT SETINFO, which
# redis-py and redis-rs send and whose errors they ignore, stays denied: it
# is unknown to Redis 7.0 (the Debian stand-in) and would fail the config.
CONNECTION = ("+ping", "+select", "+client|setname")

# One ACL user per client, allowed only its own commands on its own keys.
# Everything else is denied, FLUSHALL, FLUSHDB, CONFIG, DEBUG and KEYS
# included: each user starts from ``-@all``.
USERS: dict[str, tuple[str, ...]] = {
    # GCRA script (services/gateway/src/ratelimit.rs): EVALSHA, SCRIPT LOAD
    # when Redis lost the script; inside it TIME, GET and SET on its key.
    "gateway": (f"~{RATE_LIMITS}", *CONNECTION, "+evalsha", "+script|load", "+time", "+get", "+set"),
    # Reads the live version's name, then that version's feature hashes.
    "inference": (f"%R~{FEATURES}", *CONNECTION, "+get", "+hgetall"),
    # The features job (jobs/online.py) writes a version's hashes (HSET,
    # EXPIRE), makes it live (SET ... GET on the pointer) and removes the
    # versions it replaced (SCAN for their keys, UNLINK); it reads no hash.
    # The streaming job writes hashes of the live version, names one with
    # SET ... NX when there is none, and keeps its progress with GET/SET.
    "spark": (
        f"%RW~{FEATURES}",
        *CONNECTION,
        "+hset",
        "+expire",
        "+get",
        "+set",
        "+scan",
        "+unlink",
    ),
    # The container's health check.
    "health": ("+ping",),
    # Operators: everything, on every key.
    "admin": ("~*", "&*", "+@all"),
}
CLIENTS = ("gateway", "inference", "spark")
HEALTH_USER = "health"
ADMIN_USER = "admin"


class RedisSettings(ConfigModel):
    """``maxmemoryRatio``: the share of the container's memory limit Redis may
    fill; the rest is headroom for the copy-on-write of an AOF rewrite and
    client buffers. ``maxmemoryPolicy``: what Redis evicts once full."""

    maxmemory_ratio: float = Field(0.45, gt=0.05, le=0.6)
    maxmemory_policy: Literal[
        "noeviction", "volatile-lru", "volatile-lfu", "volatile-ttl", "allkeys-lru", "allkeys-lfu"
    ] = "volatile-lru"


CONFIG = Section("redis", RedisSettings, RedisSettings())
IMAGE = "redis:7.4.5-bookworm"
DEPLOY = Deploy(IMAGE, Resources.of("100m", "256Mi", "512Mi"), host_port=PORT, storage_size="2Gi")


@dataclass(frozen=True)
class RedisCredentials:
    username: str
    password: pulumi.Output[str]


def maxmemory(limit: str, ratio: float) -> int:
    """Bytes Redis may fill in a container limited to ``limit``: an AOF
    rewrite forks, and the child's copy-on-write pages count against the
    same limit, so the data set stays well under it."""
    return int(memory_bytes(limit) * ratio)


def redis_conf(passwords: Mapping[str, str], maxmemory_bytes: int, policy: str) -> str:
    """The server's configuration, with one ACL user per entry of ``USERS``.

    Passwords appear only as SHA-256 digests. The ``default`` user is off,
    so every connection must name its user.
    """
    missing = sorted(set(USERS) - set(passwords))
    if missing:
        raise KeyError(f"no password for Redis users {missing}")
    lines = [
        f"port {PORT}",
        "bind * -::*",
        "protected-mode no",
        "dir /data",
        "appendonly yes",
        "appendfsync everysec",
        f"maxmemory {maxmemory_bytes}",
        f"maxmemory-policy {policy}",
        "user default off resetkeys resetchannels -@all",
    ]
    for name, rules in USERS.items():
        digest = hashlib.sha256(passwords[name].encode()).hexdigest()
        lines.append(" ".join(["user", name, "on", f"#{digest}", "resetchannels", "-@all", *rules]))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RedisArgs:
    """What Redis is built from; the defaults make a minimal call work."""

    config: RedisSettings = field(default_factory=RedisSettings)
    deploy: Deploy = DEPLOY


class Redis(Service):
    """One Redis server with AOF persistence and least-privilege ACL users.

    Defaults: each client (gateway, inference, Spark) has its own user and
    generated password and may touch only its keys with only the commands
    it sends; the ``default`` user is off; the configuration (password
    digests only) is a secret file; ``maxmemory`` is ``redis.maxmemoryRatio``
    of the container's memory limit with ``redis.maxmemoryPolicy``; the
    append-only file is fsynced every second on a persistent volume; runs as
    the image's ``redis`` user (999).
    """

    credentials: dict[str, RedisCredentials]
    host: str
    port: int

    def __init__(
        self, name: str, args: RedisArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Redis", name, None, opts)
        self.credentials = {
            user: RedisCredentials(user, generated_secret(target.names.of(f"redis-{user}-password"), self))
            for user in USERS
        }
        conf, deploy = args.config, args.deploy
        capacity = maxmemory(deploy.resources.memory_limit, conf.maxmemory_ratio)
        policy = conf.maxmemory_policy
        config = pulumi.Output.all(**{u: c.password for u, c in self.credentials.items()}).apply(
            lambda passwords: redis_conf(passwords, capacity, policy)
        )
        password_file = secret_path(f"{HEALTH_USER}-password")
        ping = (
            "sh",
            "-c",
            f'REDISCLI_AUTH="$(cat {password_file})" redis-cli --user {HEALTH_USER} -p {PORT} ping'
            " | grep -q PONG",
        )
        workload = Workload(
            name=NAME,
            image=deploy.image,
            user=999,
            group=999,
            command=("redis-server",),
            args=(secret_path("redis.conf"),),
            files=(
                File(secret_path("redis.conf"), config, secret=True),
                File(password_file, self.credentials[HEALTH_USER].password, secret=True),
            ),
            ports=(Port("redis", PORT, host_port=deploy.host_port),),
            volumes=(deploy.volume("/data"),),
            # PING is the image's one signal, and it serves both: Redis
            # answers LOADING, not PONG, only while it loads its data at
            # start, which the startup probe allows for; after that an
            # unanswered PING means a stuck server, which a restart mends.
            # An update that changes these probes restarts the single Redis.
            health=HealthCheck(ProbeKind.EXEC, ping, interval_seconds=5, retries=10, start_seconds=5),
            resources=deploy.resources,
        )
        self.maxmemory = capacity
        self.deployment = target.deploy(workload, self)
        self.host = self.deployment.host
        self.port = PORT
        self.register_outputs({"host": self.host, "port": self.port})

    def outputs(self) -> dict[str, Any]:
        return {"redis_admin_password": self.credentials[ADMIN_USER].password}


def build(ctx: Context) -> Redis:
    return Redis(
        ctx.target.names.of(NAME),
        RedisArgs(CONFIG.of(ctx.settings), ctx.deploy(NAME, DEPLOY)),
        ctx.target,
        ctx.opts,
    )


SPEC = ServiceSpec.single(NAME, build, DEPLOY, sections=(CONFIG,))


__all__ = ["SPEC", "Redis", "RedisArgs", "RedisCredentials", "RedisSettings", "redis_conf"]
