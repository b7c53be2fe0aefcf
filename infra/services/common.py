"""Small pieces every service module uses."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from infra.settings import ResourceSettings, Settings
from infra.workload import SECRETS_DIR, ProjectImage, Resources


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


def resources(settings: Settings, workload: str, default: ResourceSettings) -> Resources:
    chosen = settings.resources_for(workload, default)
    return Resources(
        cpu_request=chosen.cpu_request,
        memory_request=chosen.memory_request,
        memory_limit=chosen.memory_limit,
        cpu_limit=chosen.cpu_limit,
    )


def defaults(cpu: str, memory: str, limit: str) -> ResourceSettings:
    return ResourceSettings(cpu_request=cpu, memory_request=memory, memory_limit=limit)
