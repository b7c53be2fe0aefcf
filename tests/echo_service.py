"""A service that is not part of the platform, declared the way every
service is: one module with its settings, ports, image, volume, workload,
scrape target and output. tests/test_new_service.py lists it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pydantic import Field

from infra.config import ConfigModel, Resources, Section
from infra.services.base import Context, Service, ServiceSpec
from infra.targets import Target
from infra.workload import Metrics, Port, Volume, Workload, http_check

NAME = "echo"
PORT = 5678


class EchoSettings(ConfigModel):
    replicas: int = Field(1, ge=1, le=3)
    text: str = Field("hello", min_length=1)


CONFIG = Section("echo", EchoSettings, EchoSettings())
IMAGE = "hashicorp/http-echo:1.0.0"
STORAGE = "1Gi"
RESOURCES = Resources.of("10m", "16Mi", "64Mi")


@dataclass(frozen=True)
class EchoArgs:
    config: EchoSettings = field(default_factory=EchoSettings)
    image: str = IMAGE
    host_port: int = PORT
    storage_size: str = STORAGE
    resources: Resources = RESOURCES


class Echo(Service):
    url: pulumi.Output[str]

    def __init__(self, args: EchoArgs, target: Target, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dataplatform:index:Echo", NAME, None, opts)
        workload = Workload(
            name=NAME,
            image=args.image,
            user=65534,
            group=65534,
            args=(f"-text={args.config.text}", f"-listen=:{PORT}"),
            ports=(Port("http", PORT, host_port=args.host_port),),
            volumes=(Volume("data", "/data", args.storage_size),),
            health=http_check(PORT, "/", via="wget"),
            metrics=Metrics(PORT),
            talks_to=("redis",),
            resources=args.resources,
        )
        target.deploy(workload, self)
        self.scraped = [workload]
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"echo_url": self.url}


def build(ctx: Context) -> Echo:
    settings = ctx.settings
    args = EchoArgs(
        config=CONFIG.of(settings),
        image=settings.pinned_image(NAME),
        host_port=settings.host_port(NAME),
        storage_size=settings.storage_size(NAME),
        resources=settings.resources_for(NAME, RESOURCES),
    )
    return Echo(args, ctx.target, ctx.opts)


SPEC = ServiceSpec(
    name=NAME,
    build=build,
    sections=(CONFIG,),
    host_ports={NAME: PORT},
    images={NAME: IMAGE},
    storage={NAME: STORAGE},
    workloads=(NAME,),
)
