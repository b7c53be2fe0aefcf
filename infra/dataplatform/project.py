"""The project's name and where its files are: defined here and nowhere else."""

from __future__ import annotations

from pathlib import Path

# Pulumi.yaml's ``name``: the config namespace (``dataplatform:...``), the
# prefix of resource names and the local repository of the project's images.
PROJECT = "dataplatform"
# The tag of the project's own images when a stack sets no ``version``.
DEFAULT_VERSION = "0.1.0"
# Files the library ships beside its modules (Grafana provisioning).
PACKAGE_DIR = Path(__file__).resolve().parent


def _source_root() -> Path | None:
    """The repository checkout the library runs from, if it does: the project's
    images can only be built from there. An installed wheel has none."""
    candidate = PACKAGE_DIR.parents[1]
    if (candidate / "images").is_dir() and (candidate / "services").is_dir():
        return candidate
    return None


SOURCE_ROOT = _source_root()


def image_reference(name: str, tag: str, registry: str = PROJECT) -> str:
    """``<registry>/<name>:<tag>``; a bare registry name is the local one the
    dev tier builds into."""
    return f"{registry.rstrip('/')}/{name}:{tag}"
