"""The project's name and where its files are: defined here and nowhere else."""

from __future__ import annotations

from pathlib import Path

# Pulumi.yaml's ``name``: the config namespace (``dataplatform:...``), the
# prefix of resource names and the local repository of the project's images.
PROJECT = "dataplatform"
ROOT = Path(__file__).resolve().parents[1]
# The tag of the project's own images when a stack sets no ``version``.
DEFAULT_VERSION = "0.1.0"


def image_reference(name: str, tag: str, registry: str = PROJECT) -> str:
    """``<registry>/<name>:<tag>``; a bare registry name is the local one the
    dev tier builds into."""
    return f"{registry.rstrip('/')}/{name}:{tag}"
