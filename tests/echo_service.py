"""A service that is not part of the platform, declared the way every
service is: one module with its settings, ports, image, volume, workload,
scrape target and output. tests/test_new_service.py lists it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pydantic import Field

from dataplatform.config import ConfigModel, Resources, Section
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.targets import Target
from dataplatform.workload import Metrics, Port, Workload, http_check

NAME = "echo"
PORT = 5678


class EchoSettings(ConfigModel):
    replicas: int = Field(1, ge=1, le=3)
    text: str = Field("hello", min_length=1)


CONFIG = Section("echo", EchoSettings, EchoSettings())
DEPLOY = Deploy(
    "hashicorp/http-echo:1.0.0", Resources.of("10m", "16Mi", "64Mi"), host_port=PORT, storage_size="1Gi"
)


@dataclass(frozen=True)
class EchoArgs:
    config: EchoSettings = field(default_factory=EchoSettings)
    deploy: Deploy = DEPLOY


class Echo(Service):
    url: pulumi.Output[str]

    def __init__(self, args: EchoArgs, target: Target, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dataplatform:index:Echo", NAME, None, opts)
        deploy = args.deploy
        workload = Workload(
            name=NAME,
            image=deploy.image,
            user=65534,
            group=65534,
            args=(f"-text={args.config.text}", f"-listen=:{PORT}"),
            ports=(Port("http", PORT, host_port=deploy.host_port),),
            volumes=(deploy.volume("/data"),),
            health=http_check(PORT, "/", via="wget"),
            metrics=Metrics(PORT),
            talks_to=("redis",),
            resources=deploy.resources,
        )
        target.deploy(workload, self)
        self.scraped = [workload]
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"echo_url": self.url}


def build(ctx: Context) -> Echo:
    return Echo(EchoArgs(CONFIG.of(ctx.settings), ctx.deploy(NAME, DEPLOY)), ctx.target, ctx.opts)


SPEC = ServiceSpec.single(NAME, build, DEPLOY, sections=(CONFIG,))
