"""``DataPlatform``: every service of the catalogue, wired together, on the chosen tier.

A program passes plain arguments (the same keys the repository's stacks
write as config), its providers through ``opts``, and gets the endpoints
back as outputs. Nothing here reads stack config.
"""

import os
from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_docker as docker

from dataplatform.config import DNS_LABEL_RE, Settings, SettingsError
from dataplatform.naming import LEGACY_TYPE, Names
from dataplatform.pinning import pin
from dataplatform.services.base import Context, Service, ServiceSpec
from dataplatform.services.catalog import SERVICES
from dataplatform.settings import parse_settings
from dataplatform.targets import Target
from dataplatform.targets.docker import DockerOptions, DockerTarget
from dataplatform.targets.kubeconfig import current_context
from dataplatform.targets.kubernetes import KubernetesOptions, KubernetesTarget
from dataplatform.workload import WorkloadError, flow_target

SPARK_OPERATOR_CHOICES = ("install", "existing")


class DataPlatformArgs(TypedDict, total=False):
    """What a program passes to ``DataPlatform``; every field is optional.

    ``config``: the platform's settings under the keys the repository's
    stacks use (``target``, ``version``, ``imageRegistry``, ``hostPorts``,
    ``kubernetes``, ``gateway``, ...; docs/configuration.md lists them),
    validated at once, each error naming its key. Empty: the dev tier with
    its defaults.

    ``namespace``: the Kubernetes namespace the platform deploys into
    (default ``kubernetes.namespace``, ``dataplatform``).

    ``create_namespace``: create that namespace, labelled for the
    "restricted" Pod Security profile (default true); false deploys into a
    namespace the caller owns, which must exist.

    ``docker_host``: the Docker engine of the dev tier, such as
    ``unix:///run/user/1000/docker.sock`` (default: the provider's own, the
    local engine).

    ``spark_operator``: ``install`` the Spark Operator's chart (default), or
    use the ``existing`` one another platform or the cluster's owner
    installed; it must watch this platform's namespace.
    """

    config: dict[str, Any]
    namespace: str
    create_namespace: bool
    docker_host: str
    spark_operator: str


def _argument_error(argument: str, message: str) -> SettingsError:
    return SettingsError(f"DataPlatform argument {argument}: {message}")


def _apply_args(settings: Settings, args: DataPlatformArgs) -> Settings:
    """``settings`` with the arguments that are not config keys applied, each
    checked with an error naming it."""
    update: dict[str, Any] = {}
    namespace = args.get("namespace")
    if namespace is not None:
        if not DNS_LABEL_RE.match(namespace):
            raise _argument_error(
                "namespace", f"{namespace!r} is not a DNS label (lowercase letters, digits, '-')"
            )
        update["kubernetes"] = settings.kubernetes.model_copy(update={"namespace": namespace})
    operator = args.get("spark_operator")
    if operator is not None:
        if operator not in SPARK_OPERATOR_CHOICES:
            raise _argument_error(
                "spark_operator", f"{operator!r} is not one of {', '.join(SPARK_OPERATOR_CHOICES)}"
            )
        current = getattr(settings, "spark_operator")  # noqa: B009
        update["spark_operator"] = current.model_copy(update={"install": operator == "install"})
    return settings.model_copy(update=update) if update else settings


def _given_provider(opts: pulumi.ResourceOptions | None, package: str) -> pulumi.ProviderResource | None:
    """The provider for ``package`` the caller passed in ``opts``, if any."""
    if opts is None:
        return None
    providers = opts.providers
    found = list(providers.values()) if isinstance(providers, Mapping) else list(providers or [])
    if opts.provider is not None:
        found.append(opts.provider)
    return next((p for p in found if getattr(p, "package", None) == package), None)


class DataPlatform(pulumi.ComponentResource):
    """Every service of ``specs`` (the catalogue's by default), built in their order.

    Services reach each other by name (``redis``, ``minio``, ...) in both
    tiers. Each service gets only the credentials it needs: Spark a MinIO
    user with read-write access to the data buckets, inference a user that
    can only read the models bucket, the gateway no MinIO access at all.

    Providers: the Kubernetes and Docker providers the caller passes in
    ``opts`` (``providers``) are used; without one, the platform makes a
    Kubernetes provider from ``kubernetes.kubeconfigContext`` (or the
    ambient kubeconfig), and a Docker provider for ``docker_host`` when it
    is given. Resources are named after ``name``, so several platforms
    share one program, one cluster (a namespace each) and one Docker engine
    (distinct container names and host ports).

    ``settings`` lets a Python program pass settings it already parsed
    (``config`` is then not read); ``specs`` replaces the catalogue.
    """

    target_tier: pulumi.Output[str]
    namespace: pulumi.Output[str]
    gateway_url: pulumi.Output[str]
    grafana_url: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    minio_endpoint: pulumi.Output[str]
    spark_master_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: DataPlatformArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        *,
        settings: Settings | None = None,
        specs: tuple[ServiceSpec, ...] = SERVICES,
    ) -> None:
        args = args or DataPlatformArgs()
        if not DNS_LABEL_RE.match(name):
            raise _argument_error("name", f"{name!r} is not a DNS label (lowercase letters, digits, '-')")
        if settings is None:
            settings = parse_settings(dict(args.get("config") or {}), specs)
        settings = _apply_args(settings, args)
        # Before anything is declared: on Kubernetes every image pinned to a
        # digest and the operator's chart checked against its sha256.
        settings = pin(settings, specs)
        names = Names(name)
        opts = pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(transforms=[names.legacy_aliases()] if names.keeps_legacy_names else []),
        )
        docker_host = args.get("docker_host")
        if docker_host and settings.is_docker:
            if _given_provider(opts, "docker"):
                raise _argument_error(
                    "docker_host", "given together with a Docker provider in opts; pass one"
                )
            engine = docker.Provider(
                names.of("docker"), host=docker_host, opts=pulumi.ResourceOptions(parent=opts.parent)
            )
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[engine]))
        if names.keeps_legacy_names:
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=LEGACY_TYPE)])
            )
        super().__init__("dataplatform:index:DataPlatform", name, None, opts)
        self.settings = settings
        stack = pulumi.get_stack()
        kubernetes_provider = _given_provider(opts, "kubernetes")
        self.target: Target = self._make_target(
            settings, stack, names, args, kubernetes_provider is not None, waits=bool(opts.depends_on)
        )
        context = Context(settings, self.target, self, specs)
        for spec in specs:
            service = spec.build(context)
            if service is not None:
                context.services[spec.name] = service
        self.services: dict[str, Service] = context.services
        self._check_names()
        self.target.finalize()

        outputs: dict[str, Any] = {"target": settings.target.value, "buckets": settings.buckets.model_dump()}
        if isinstance(self.target, KubernetesTarget):
            context_name = settings.kubernetes.kubeconfig_context
            if context_name is None and kubernetes_provider is None and not settings.kubernetes.render_dir:
                context_name = current_context()
            outputs["kubernetes"] = {
                "namespace": self.target.namespace,
                "context": context_name,
                "kubeconfig": None if kubernetes_provider else os.environ.get("KUBECONFIG"),
            }
        else:
            assert isinstance(self.target, DockerTarget)
            outputs["docker"] = {"host": docker_host, "prefix": self.target.prefix}
        credentials: dict[str, pulumi.Input[str]] = {}
        for service in self.services.values():
            outputs.update(service.outputs())
            credentials.update(service.shared_credentials())
        outputs["platform_credentials"] = pulumi.Output.secret(credentials)
        self.outputs: dict[str, Any] = outputs
        self.target_tier = pulumi.Output.from_input(settings.target.value)
        self.namespace = pulumi.Output.from_input(
            self.target.namespace if isinstance(self.target, KubernetesTarget) else ""
        )
        for key in ("gateway_url", "grafana_url", "prometheus_url", "minio_endpoint", "spark_master_url"):
            setattr(self, key, pulumi.Output.from_input(outputs.get(key, "")))
        self.register_outputs(
            {
                "target_tier": self.target_tier,
                "namespace": self.namespace,
                **{k: getattr(self, k) for k in ("gateway_url", "grafana_url", "prometheus_url")},
                "minio_endpoint": self.minio_endpoint,
                "spark_master_url": self.spark_master_url,
            }
        )

    def _make_target(
        self,
        settings: Settings,
        stack: str,
        names: Names,
        args: DataPlatformArgs,
        given_provider: bool,
        waits: bool,
    ) -> Target:
        """The tier's target, handed only the settings of its own tier."""
        if settings.is_docker:
            return DockerTarget(
                DockerOptions(
                    bind_address=settings.bind_address,
                    build_images=settings.build_images,
                    build_ca_file=settings.build_ca_file,
                    purge_on_destroy=settings.purge_on_destroy,
                ),
                stack,
                names,
                self,
            )
        return KubernetesTarget(
            KubernetesOptions(
                cluster=settings.kubernetes,
                image_registry=settings.image_registry or "",
                storage_class=settings.storage_class,
                purge_on_destroy=settings.purge_on_destroy,
                image_pull_secrets=tuple(settings.image_pull_secrets),
                create_namespace=args.get("create_namespace", True),
                own_provider=not given_provider,
                # A program that creates the namespace makes the platform wait on it.
                check_namespace=not waits,
            ),
            stack,
            names,
            self,
        )

    def _check_names(self) -> None:
        """Every ``depends_on``/``talks_to`` names a declared workload."""
        deployed = self.target.deployed
        known = set(deployed)
        for workload in deployed.values():
            flows = [(entry, *flow_target(entry)) for entry in workload.talks_to]
            for other in (*workload.depends_on, *(name for _, name, _ in flows)):
                if other not in known:
                    raise WorkloadError(f"{workload.name}: names {other!r}, which is not a declared workload")
            for entry, other, port in flows:
                if port is not None and deployed[other].port_named(port) is None:
                    raise WorkloadError(
                        f"{workload.name}: talks to {entry!r}, but {other} has no port {port!r}"
                    )
