"""Entry points the engine starts as ``pulumi-resource-docker`` and
``pulumi-resource-random``. Each reports the version of the Python SDK the
project pins, so the engine takes it for the plugin that SDK asks for."""

from __future__ import annotations

import os

from local_providers.server import Provider, serve

# Keep equal to the pins in the project's requirements.txt.
DOCKER_VERSION = os.environ.get("LOCAL_PROVIDERS_DOCKER_VERSION", "5.2.0")
RANDOM_VERSION = os.environ.get("LOCAL_PROVIDERS_RANDOM_VERSION", "4.21.4")


def docker_main() -> None:
    from local_providers.docker_provider import KINDS

    serve(Provider("docker", DOCKER_VERSION, KINDS))


def random_main() -> None:
    from local_providers.random_provider import RandomPassword

    serve(Provider("random", RANDOM_VERSION, [RandomPassword()]))


if __name__ == "__main__":
    import sys

    {"docker": docker_main, "random": random_main}[sys.argv[1]]()
