"""The dev tier: every workload as containers on one local Docker engine.

Secure defaults applied to every container: the workload's non-root user,
all capabilities dropped, ``no-new-privileges``, a memory limit, a health
check the engine waits on, a bounded ``on-failure`` restart policy, ports
published on the configured bind address only (127.0.0.1 by default), log
rotation, and a read-only root filesystem with tmpfs for scratch paths.

Files reach a workload without a writable root: the engine copies uploads
only into a writable filesystem, so each directory of files is a volume,
filled by a carrier container that is created and never started (uploads
owned by the workload's user, secret files readable by that user only),
and mounted read-only by the workload's containers. A label holding a
digest of the files replaces those containers when a file changes.

Deliberate gaps against the Kubernetes tier: no autoscaler (``replicas``
containers share one network alias instead), no network policies (one
private bridge network), no disruption budgets, no exposure beyond host
ports, and none of a cluster's API (charts, custom resources): this target
is not a ``ClusterTarget``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from dataplatform.naming import Names
from dataplatform.project import SOURCE_ROOT
from dataplatform.targets.base import Deployment
from dataplatform.workload import (
    HealthCheck,
    ImageRef,
    ProjectImage,
    Workload,
    WorkloadError,
)
from jobs.quantity import mib

MAX_RESTARTS = 5
SECRET_MODE = "0400"
PLAIN_MODE = "0444"


def _seconds(value: int) -> str:
    return f"{value}s"


@dataclass(frozen=True)
class DockerOptions:
    """The settings of the dev tier, and nothing else."""

    bind_address: str
    build_images: bool
    build_ca_file: str | None
    purge_on_destroy: bool


class DockerTarget:
    """Renders workloads with pulumi-docker. Construct inside a component;
    shared resources (network, images) become children of ``parent``."""

    name = "docker"

    def __init__(self, options: DockerOptions, stack: str, names: Names, parent: pulumi.Resource) -> None:
        self._options = options
        self._parent = parent
        self.names = names
        # Containers, volumes and the network are named after the platform
        # and the stack, so platforms and stacks share one engine.
        self.prefix = f"{names.platform}-{stack}"
        self.network_name: str | None = self.prefix
        self._images: dict[str, pulumi.Output[str]] = {}
        self._containers: dict[str, list[docker.Container]] = {}
        self._deployed: dict[str, Workload] = {}
        self._current_parent: pulumi.Resource = parent
        self.network = docker.Network(
            names.of("network"),
            name=self.prefix,
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label="dataplatform.stack", value=stack)],
            opts=pulumi.ResourceOptions(parent=parent),
        )

    # -- images -----------------------------------------------------------

    def _build_args(self) -> dict[str, str]:
        path = self._options.build_ca_file
        if not path:
            return {}
        return {"EXTRA_CA_CERTS": Path(path).read_text()}

    def image_name(self, workload_image: ImageRef) -> pulumi.Output[str]:
        """The image ID to run: IDs, unlike tags, make the engine's state
        match the declared state, so an unchanged image is no diff."""
        ref = workload_image
        key = ref.name if isinstance(ref, ProjectImage) else ref
        if key in self._images:
            return self._images[key]
        opts = pulumi.ResourceOptions(parent=self._parent)
        resource_name = key.replace("/", "-").replace(":", "-").replace("@", "-")
        if isinstance(ref, ProjectImage):
            if ref.override or not self._options.build_images:
                image = ref.override or ref.reference()
                remote = docker.RemoteImage(
                    self.names.of(f"image-{ref.name}"), name=image, keep_locally=True, opts=opts
                )
                self._images[key] = remote.image_id
                return remote.image_id
            if SOURCE_ROOT is None:
                raise pulumi.RunError(
                    f"buildImages: the {ref.name} image can only be built from the project's source "
                    "checkout; set buildImages to false and images/imageRegistry to where it is published"
                )
            built = docker.Image(
                self.names.of(f"image-{ref.name}"),
                image_name=ref.reference(),
                build=docker.DockerBuildArgs(
                    context=str(SOURCE_ROOT / ref.context),
                    dockerfile=str(SOURCE_ROOT / ref.dockerfile),
                    args=self._build_args(),
                    builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
                    platform="linux/amd64",
                ),
                skip_push=True,
                opts=opts,
            )
            # Resolve the built tag to its ID through the engine, which also
            # orders containers after the build.
            local = docker.RemoteImage(
                self.names.of(f"image-{ref.name}-local"),
                name=built.image_name,
                keep_locally=True,
                pull_triggers=[built.repo_digest],
                opts=pulumi.ResourceOptions(parent=self._parent, depends_on=[built]),
            )
            self._images[key] = local.image_id
            return local.image_id
        remote = docker.RemoteImage(
            self.names.of(f"image-{resource_name}"), name=ref, keep_locally=True, opts=opts
        )
        self._images[key] = remote.image_id
        return remote.image_id

    # -- workloads --------------------------------------------------------

    @property
    def deployed(self) -> Mapping[str, Workload]:
        return self._deployed

    def metrics_host(self, workload: Workload) -> str:
        return workload.name

    def published_url(self, workload: Workload, port: str, scheme: str = "http") -> pulumi.Output[str]:
        p = workload.port(port)
        if p.host_port is None:
            return pulumi.Output.from_input(f"{scheme}://{workload.name}:{p.container_port}")
        host = self._options.bind_address
        return pulumi.Output.from_input(f"{scheme}://{host}:{p.host_port}")

    def _healthcheck(self, health: HealthCheck) -> docker.ContainerHealthcheckArgs:
        return docker.ContainerHealthcheckArgs(
            tests=["CMD", *health.command],
            interval=_seconds(health.interval_seconds),
            timeout=_seconds(health.timeout_seconds),
            retries=health.retries,
            start_period=_seconds(health.start_seconds),
        )

    def _volume(self, workload: Workload, name: str) -> docker.Volume:
        # Data outlives containers, and `destroy` too unless purging is asked for.
        return docker.Volume(
            self.names.of(f"{workload.name}-{name}"),
            name=f"{self.prefix}-{workload.name}-{name}",
            labels=[docker.VolumeLabelArgs(label="dataplatform.data", value="true")],
            opts=pulumi.ResourceOptions(
                parent=self._current_parent,
                retain_on_delete=not self._options.purge_on_destroy,
            ),
        )

    def _hardening(self, workload: Workload) -> dict[str, object]:
        """What every container of the workload shares, carriers included."""
        return {
            "user": f"{workload.user}:{workload.group}",
            "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            "security_opts": ["no-new-privileges:true"],
            # The provider takes whole MiB.
            "memory": mib(workload.resources.memory_limit),
            "log_driver": "json-file",
            "log_opts": {"max-size": "10m", "max-file": "3"},
        }

    def _files(
        self, workload: Workload, image: pulumi.Output[str], parent: pulumi.Resource
    ) -> tuple[list[docker.ContainerVolumeArgs], list[pulumi.Resource], pulumi.Output[str] | None]:
        """The volumes holding the workload's files (mounted read-only), the
        carrier that fills them, and a digest of the files."""
        if not workload.files:
            return [], [], None
        directories = sorted({f.directory for f in workload.files})
        mounts: list[docker.ContainerVolumeArgs] = []
        carrier_mounts: list[docker.ContainerVolumeArgs] = []
        for index, directory in enumerate(directories):
            volume = docker.Volume(
                self.names.of(f"{workload.name}-files-{index}"),
                name=f"{self.prefix}-{workload.name}-files-{index}",
                labels=[docker.VolumeLabelArgs(label="dataplatform.files", value=workload.name)],
                opts=pulumi.ResourceOptions(parent=parent),
            )
            carrier_mounts.append(
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory)
            )
            mounts.append(
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=directory, read_only=True)
            )
        uploads = [
            docker.ContainerUploadArgs(
                file=f.path,
                content=f.content,
                owner=str(workload.user),
                group=str(workload.group),
                permissions=SECRET_MODE if f.secret else PLAIN_MODE,
            )
            for f in workload.files
        ]
        carrier = docker.Container(
            self.names.of(f"{workload.name}-files"),
            name=f"{self.prefix}-{workload.name}-files",
            image=image,
            uploads=uploads,
            volumes=carrier_mounts,
            # Created to receive the uploads into its volumes, never run.
            start=False,
            must_run=False,
            restart="no",
            labels=[docker.ContainerLabelArgs(label="dataplatform.files", value=workload.name)],
            **self._hardening(workload),  # type: ignore[arg-type]
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
        )
        contents = [
            pulumi.Output.concat(f.path, "\0", f.content)
            for f in sorted(workload.files, key=lambda f: f.path)
        ]
        digest = pulumi.Output.all(*contents).apply(
            lambda parts: hashlib.sha256("\0".join(parts).encode()).hexdigest()
        )
        return mounts, [carrier], digest

    def deploy(self, workload: Workload, parent: pulumi.Resource) -> Deployment:
        if workload.scrapes_pods:
            # Docker has no API to discover containers the stack did not declare.
            raise WorkloadError(f"{workload.name}: scrapes pods, which only a Kubernetes target can do")
        self._current_parent = parent
        image = self.image_name(workload.image)
        volumes = [
            docker.ContainerVolumeArgs(
                volume_name=self._volume(workload, v.name).name,
                container_path=v.mount_path,
            )
            for v in workload.volumes
        ]
        file_mounts, carriers, digest = self._files(workload, image, parent)
        volumes += file_mounts
        depends: list[pulumi.Resource] = [
            c for name in workload.depends_on for c in self._containers.get(name, [])
        ] + carriers
        env = [pulumi.Output.concat(k, "=", v) for k, v in sorted(workload.env.items())]
        labels = [docker.ContainerLabelArgs(label="dataplatform.workload", value=workload.name)]
        if digest is not None:
            labels.append(docker.ContainerLabelArgs(label="dataplatform.files-digest", value=digest))
        containers: list[docker.Container] = []
        count = 1 if workload.one_shot else workload.replicas
        for index in range(count):
            suffix = "" if count == 1 else f"-{index + 1}"
            hostname = f"{workload.name}{suffix}"
            # Only the first replica publishes; the rest answer on the alias.
            ports = (
                [
                    docker.ContainerPortArgs(
                        internal=p.container_port,
                        external=p.host_port,
                        ip=self._options.bind_address,
                    )
                    for p in workload.ports
                    if p.host_port is not None
                ]
                if index == 0
                else []
            )
            container = docker.Container(
                self.names.of(hostname),
                name=f"{self.prefix}-{hostname}",
                hostname=hostname,
                image=image,
                entrypoints=list(workload.command) if workload.command else None,
                command=list(workload.args) if workload.args is not None else None,
                envs=env,
                ports=ports,
                volumes=volumes,
                networks_advanced=[
                    docker.ContainerNetworksAdvancedArgs(
                        name=self.network.name, aliases=sorted({workload.name, hostname})
                    )
                ],
                read_only=True,
                tmpfs={path: "rw,nosuid,nodev,mode=1777,size=512m" for path in workload.scratch},
                init=True,
                healthcheck=self._healthcheck(workload.health) if workload.health else None,
                restart="no" if workload.one_shot else "on-failure",
                max_retry_count=0 if workload.one_shot else MAX_RESTARTS,
                must_run=not workload.one_shot,
                # Long-running containers: `up` returns once they are healthy.
                # One-shot containers: `up` waits for them to finish.
                wait=bool(workload.health) and not workload.one_shot,
                wait_timeout=300,
                attach=workload.one_shot,
                logs=workload.one_shot,
                labels=labels,
                destroy_grace_seconds=30,
                **self._hardening(workload),  # type: ignore[arg-type]
                # The name is fixed, so the old container must go before its
                # replacement can be created, whatever triggered the replace.
                opts=pulumi.ResourceOptions(parent=parent, depends_on=depends, delete_before_replace=True),
            )
            containers.append(container)
        self._containers[workload.name] = containers
        self._deployed[workload.name] = workload
        return Deployment(workload, list(containers))

    def finalize(self) -> None:
        return None
