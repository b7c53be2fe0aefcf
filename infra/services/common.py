"""Small pieces several service modules use: generated secrets, secret file
paths, the project's images and the shape of a Prometheus-project server."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from infra.config import Resources, Settings
from infra.workload import File, Metrics, Port, ProjectImage, Volume, Workload, http_check
from jobs.conventions import SECRETS_DIR


def generated_secret(
    name: str, parent: pulumi.Resource, length: int = 32, keepers: dict[str, str] | None = None
) -> pulumi.Output[str]:
    """A random credential, generated once and kept in the stack's state as a
    secret. Letters and digits only, so it is safe in URLs and config files.
    A change in ``keepers`` generates a new one (rotation through config)."""
    password = random.RandomPassword(
        name,
        length=length,
        special=False,
        min_upper=2,
        min_lower=2,
        min_numeric=2,
        keepers=keepers,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return pulumi.Output.secret(password.result)


def secret_path(filename: str) -> str:
    return f"{SECRETS_DIR}/{filename}"


def project_image(settings: Settings, name: str, context: str, dockerfile: str) -> ProjectImage:
    """One of the project's images at the stack's version, or the reference
    ``dataplatform:images.<name>`` gives instead."""
    override = settings.image(name)
    return ProjectImage(name, context, dockerfile, settings.version, override=override)


NOBODY = 65534


def prometheus_family_server(
    *,
    name: str,
    image: str,
    port: int,
    host_port: int,
    config: File,
    storage_flag: str,
    storage_path: str,
    storage_size: str,
    resources: Resources,
    files: tuple[File, ...] = (),
    extra_args: tuple[str, ...] = (),
    last_args: tuple[str, ...] = (),
    metrics: Metrics | None = None,
    talks_to: tuple[str, ...] = (),
) -> Workload:
    """A server of the Prometheus project (Prometheus, Alertmanager): the same
    flags for its configuration file, its storage and its listen address,
    state on a volume, ``/-/ready`` as its check, run as ``nobody``."""
    return Workload(
        name=name,
        image=image,
        user=NOBODY,
        group=NOBODY,
        command=(name,),
        args=(
            f"--config.file={config.path}",
            f"{storage_flag}={storage_path}",
            *extra_args,
            f"--web.listen-address=:{port}",
            *last_args,
        ),
        files=(config, *files),
        ports=(Port("http", port, host_port=host_port),),
        volumes=(Volume("data", storage_path, storage_size),),
        health=http_check(port, "/-/ready", via="wget"),
        metrics=metrics,
        talks_to=talks_to,
        resources=resources,
    )
