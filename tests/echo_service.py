"""A service that is not part of the platform, declared the way every
service is: one module with its settings, ports, image, volume, workload,
scrape target and output. tests/test_new_service.py registers it."""

from __future__ import annotations

from typing import Any

import pulumi
from pydantic import Field

from infra.services.base import Context, Service, ServiceSpec
from infra.services.common import defaults, resources
from infra.settings import ConfigModel, Section
from infra.targets import Target
from infra.workload import Metrics, Port, Volume, Workload, http_check

NAME = "echo"
PORT = 5678


class EchoSettings(ConfigModel):
    replicas: int = Field(1, ge=1, le=3)
    text: str = Field("hello", min_length=1)


CONFIG = Section("echo", EchoSettings, EchoSettings())


class Echo(Service):
    url: pulumi.Output[str]

    def __init__(self, ctx: Context, target: Target) -> None:
        super().__init__("dataplatform:index:Echo", NAME, None, ctx.opts)
        settings = ctx.settings
        conf = CONFIG.of(settings)
        workload = Workload(
            name=NAME,
            image=settings.pinned_image(NAME),
            user=65534,
            group=65534,
            args=(f"-text={conf.text}", f"-listen=:{PORT}"),
            ports=(Port("http", PORT, host_port=settings.host_port(NAME)),),
            volumes=(Volume("data", "/data", settings.storage_size(NAME)),),
            health=http_check(PORT, "/", via="wget"),
            metrics=Metrics(PORT),
            talks_to=("redis",),
            resources=resources(settings, NAME, defaults("10m", "16Mi", "64Mi")),
        )
        target.deploy(workload, self)
        self.scraped = [workload]
        self.url = target.published_url(workload, "http")
        self.register_outputs({"url": self.url})

    def outputs(self) -> dict[str, Any]:
        return {"echo_url": self.url}


SPEC = ServiceSpec(
    name=NAME,
    build=lambda ctx: Echo(ctx, ctx.target),
    sections=(CONFIG,),
    host_ports={NAME: 5678},
    images={NAME: "hashicorp/http-echo:1.0.0"},
    storage={NAME: "1Gi"},
    workloads=(NAME,),
)
