"""The ``DataPlatform`` component as a Pulumi package for programs in any language.

The engine runs this directory as a plugin (``PulumiPlugin.yaml``): a YAML,
TypeScript, Go, C# or Java program adds it with ``pulumi package add`` and
declares a ``dataplatform:index:DataPlatform`` resource. The schema those
programs see is inferred from the type annotations of ``DataPlatformArgs``
(the inputs) and of the component's ``pulumi.Output`` attributes (the
outputs); ``tests/test_provider_schema.py`` pins it.
"""

import inspect
from importlib.metadata import version

import pulumi
from pulumi.provider.experimental import component_provider_host

import dataplatform
from dataplatform import DataPlatformArgs

PACKAGE = "dataplatform"


class DataPlatform(dataplatform.DataPlatform):
    """A data/ML platform: Spark, Redis, MinIO, the API gateway, the inference
    service, Prometheus, Grafana and Alertmanager, deployed on a Docker engine
    (config target "docker", the dev tier) or a Kubernetes cluster ("kubernetes",
    the prod tier). Pass the Kubernetes or Docker provider to use in the
    resource's `providers` option; without one the platform makes its own from
    the ambient kubeconfig or Docker engine.
    """

    # The library's own constructor also takes no arguments at all and
    # settings parsed in Python; other languages always pass arguments.
    def __init__(self, name: str, args: DataPlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, args, opts)


# The schema's description is the docstring as it stands, indentation included.
DataPlatform.__doc__ = inspect.cleandoc(DataPlatform.__doc__ or "")

COMPONENTS: list[type[pulumi.ComponentResource]] = [DataPlatform]


def package_version() -> str:
    """The version the package reports: the installed library's."""
    return version(PACKAGE)


def main() -> None:
    component_provider_host(COMPONENTS, name=PACKAGE, version=package_version())


if __name__ == "__main__":
    main()
