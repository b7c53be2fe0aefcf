"""Small pieces several service modules use: generated secrets, secret file
paths and the shape of a Prometheus-project server."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from dataplatform.services.base import Deploy
from dataplatform.workload import File, Metrics, PodScrape, Port, Workload, http_check
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


NOBODY = 65534


def prometheus_family_server(
    name: str,
    deploy: Deploy,
    *,
    port: int,
    config: File,
    storage_flag: str,
    storage_path: str,
    files: tuple[File, ...] = (),
    extra_args: tuple[str, ...] = (),
    last_args: tuple[str, ...] = (),
    metrics: Metrics | None = None,
    talks_to: tuple[str, ...] = (),
    scrapes_pods: tuple[PodScrape, ...] = (),
) -> Workload:
    """A server of the Prometheus project (Prometheus, Alertmanager): the same
    flags for its configuration file, its storage and its listen address,
    state on a volume, run as ``nobody``. Alive is ``/-/healthy``; ready,
    ``/-/ready``, waits for the storage and configuration to load (a restart
    would not speed that up)."""
    return Workload(
        name=name,
        image=deploy.image,
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
        ports=(Port("http", port, host_port=deploy.host_port),),
        volumes=(deploy.volume(storage_path),),
        # Docker gates dependents on ready; Kubernetes restarts only what
        # is not alive.
        health=http_check(port, "/-/ready", via="wget"),
        liveness=http_check(port, "/-/healthy", via="wget"),
        metrics=metrics,
        talks_to=talks_to,
        scrapes_pods=scrapes_pods,
        resources=deploy.resources,
    )
