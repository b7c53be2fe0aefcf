"""Two platforms in one program, each in its own namespace (or with its own
names and ports on one Docker engine), deployed with the program's own
Kubernetes provider.

Config (``pulumi config set`` in this project):

- ``tier``: ``kubernetes`` (default) or ``docker``.
- ``platforms``: the platforms' names, also their namespaces (default
  ``analytics`` and ``research``).
- ``kubeconfig`` / ``context``: where the Kubernetes provider connects
  (default: the ambient kubeconfig and its current context).
- ``settings``: dataplatform settings both platforms share, under the keys
  of the library's config reference (``imageRegistry``, ``images``,
  ``resources``, ...).
- ``perPlatform``: settings of one platform, by name (``hostPorts`` on one
  Docker engine, for instance).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dataplatform import DataPlatform, DataPlatformArgs

config = pulumi.Config()
tier = config.get("tier") or "kubernetes"
names: list[str] = config.get_object("platforms") or ["analytics", "research"]  # type: ignore[assignment]
shared: dict[str, Any] = config.get_object("settings") or {}  # type: ignore[assignment]
per_platform: dict[str, dict[str, Any]] = config.get_object("perPlatform") or {}  # type: ignore[assignment]


def settings_of(name: str, extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**shared, **extra}
    for key, value in per_platform.get(name, {}).items():
        base = merged.get(key)
        merged[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    return merged


def exported(platform: DataPlatform) -> dict[str, Any]:
    """What a user of each platform needs: where it is and how to get in."""
    keys = (
        "gateway_url",
        "minio_endpoint",
        "minio_root_user",
        "minio_root_password",
        # The gateway's API key among the other generated credentials (a secret).
        "platform_credentials",
        # Where the platform runs, as the jobs CLI reads it.
        "kubernetes",
        "docker",
    )
    return {key: platform.outputs[key] for key in keys if key in platform.outputs}


if tier == "kubernetes":
    context = config.get("context")
    # Mutable ConfigMaps and Secrets: a changed file updates them in place,
    # and the platform's digest on each pod template rolls the pods.
    provider = k8s.Provider(
        "cluster",
        kubeconfig=config.get("kubeconfig"),
        context=context,
        enable_config_map_mutable=True,
        enable_secret_mutable=True,
    )
    platforms: list[DataPlatform] = []
    restricted = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    for index, name in enumerate(names):
        # The program owns the namespaces; each platform deploys into its own,
        # and runs its Spark jobs in another (``<name>-jobs``).
        namespaces = [
            k8s.core.v1.Namespace(
                ns,
                metadata={"name": ns, "labels": restricted},
                opts=pulumi.ResourceOptions(provider=provider),
            )
            for ns in (name, f"{name}-jobs")
        ]
        first = index == 0
        operator: dict[str, Any] = dict(shared.get("sparkOperator") or {})
        if first:
            # One Spark Operator for the cluster, watching every platform's jobs namespace.
            operator["jobNamespaces"] = [f"{other}-jobs" for other in names[1:]]
        platform = DataPlatform(
            name,
            DataPlatformArgs(
                config=settings_of(
                    name,
                    {
                        "target": "kubernetes",
                        "sparkOperator": operator,
                        # Recorded in the stack's outputs for the jobs CLI.
                        "kubernetes": {**(shared.get("kubernetes") or {}), "kubeconfigContext": context}
                        if context
                        else shared.get("kubernetes") or {},
                    },
                ),
                namespace=name,
                create_namespace=False,
                spark_operator="install" if first else "existing",
            ),
            # The first platform's operator brings the Spark custom resource
            # definitions the others' jobs are declared with.
            opts=pulumi.ResourceOptions(
                providers={"kubernetes": provider}, depends_on=[*namespaces, *platforms[:1]]
            ),
        )
        platforms.append(platform)
        pulumi.export(name, exported(platform))
else:
    for name in names:
        platform = DataPlatform(name, DataPlatformArgs(config=settings_of(name, {"target": "docker"})))
        pulumi.export(name, exported(platform))
