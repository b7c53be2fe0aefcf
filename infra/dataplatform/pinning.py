"""The prod tier pinned before anything is declared: every image to a
digest, every chart to the bytes its sha256 names.

``pin`` runs in ``DataPlatform`` before the platform registers any
resource, so a registry that cannot answer or a chart that does not match
fails ``preview`` and ``up`` with nothing created. The dev tier builds and
tags its images locally and installs no chart: it is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dataplatform.config import Settings, SettingsError
from dataplatform.images import DIGEST_RE, ImageReferenceError, Reference, placed
from dataplatform.project import PROJECT
from dataplatform.registry import RegistryError
from dataplatform.settings import stack_images
from dataplatform.supply import Supply, current_supply

if TYPE_CHECKING:
    from dataplatform.services.base import ServiceSpec


def with_value(model: Any, key: str, value: object) -> Any:
    """``model`` (a config model) with the value at ``key`` (``images.redis``,
    ``sparkOperator.image``: keys as users write them) replaced."""
    assert isinstance(model, BaseModel)
    head, _, rest = key.partition(".")
    fields = type(model).model_fields
    name = next((n for n, f in fields.items() if head in (n, f.alias)), None)
    if name is None:
        raise KeyError(f"{key}: no such key")
    return model.model_copy(update={name: with_value(getattr(model, name), rest, value) if rest else value})


def pinned_images(settings: Settings, specs: Sequence[ServiceSpec], supply: Supply) -> dict[str, str]:
    """Every image the stack deploys, where it is pulled from (under
    ``imageRegistry`` unless it names its registry) and pinned to a digest:
    the one it is given with, or the one its tag points at now. One error
    names every image that cannot be pinned."""
    wanted: dict[str, str] = {}
    pinned: dict[str, str] = {}
    todo: dict[str, str] = {}
    problems: dict[str, str] = {}
    for key, ref in stack_images(settings, specs).items():
        try:
            wanted[key] = placed(ref, settings.image_registry)
            (pinned if Reference.parse(wanted[key]).digest else todo)[key] = wanted[key]
        except ImageReferenceError as error:
            problems[key] = f"{error}; write it as [host/]repository:tag[@sha256:digest]"
    if todo:
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            asked = {key: pool.submit(supply.image_digest, ref) for key, ref in todo.items()}
            for key, answer in asked.items():
                try:
                    digest = answer.result()
                    if not DIGEST_RE.match(digest):
                        raise RegistryError(f"the registry answered {digest!r}, not a sha256 digest")
                    pinned[key] = str(Reference.parse(todo[key]).pinned(digest))
                except RegistryError as error:
                    problems[key] = (
                        f"cannot resolve {todo[key]} to a digest: {error}; push the image there, "
                        "or give it with its digest (name@sha256:...)"
                    )
    if problems:
        lines = [f"{PROJECT}:{key}: {problem}" for key, problem in sorted(problems.items())]
        raise SettingsError("cannot pin the prod images to digests:\n  " + "\n  ".join(lines))
    return {key: pinned[key] for key in wanted}


def pin(settings: Settings, specs: Sequence[ServiceSpec], supply: Supply | None = None) -> Settings:
    """On Kubernetes, ``settings`` with every image the stack deploys given
    in full with its digest, and what each service fetches at deploy time
    (the Spark Operator's chart) checked against its sha256. On Docker,
    ``settings`` unchanged."""
    if settings.is_docker:
        return settings
    supply = supply or current_supply()
    for key, reference in pinned_images(settings, specs, supply).items():
        settings = with_value(settings, key, reference)
    for spec in specs:
        if spec.pin_artifacts is not None:
            settings = spec.pin_artifacts(settings, supply)
    return settings
