"""Runs the Pulumi program under mocks and records every declared resource."""

from __future__ import annotations

import hashlib
import json
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from dataplatform.charts import ChartFetcher, ChartSource
from dataplatform.platform import DataPlatform
from dataplatform.project import PROJECT
from dataplatform.services.base import ServiceSpec
from dataplatform.services.catalog import SERVICES
from dataplatform.supply import Supply, using
from stack_config import load_settings
from tools.repo import ROOT


@dataclass
class Declared:
    """A declared resource. ``name`` is relative to the platform (``redis``
    for ``dataplatform-redis``): what the tests ask for; ``full_name`` is
    the Pulumi name."""

    typ: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    full_name: str = ""


# The API server's address where no cluster is read (mocks, renders): a
# documentation address, which no real cluster uses.
OFFLINE_API_SERVER = "192.0.2.10"


def render_to(directory: str) -> dict[str, Any]:
    """The config overrides that render to ``directory`` instead of a
    cluster; a render reads no cluster, so the API server's address is given."""
    return {"kubernetes": {"renderDir": directory, "apiServerCidrs": [f"{OFFLINE_API_SERVER}/32"]}}


class Recorder(pulumi.runtime.Mocks):
    """Echoes inputs back as outputs, plus the outputs the program reads."""

    def __init__(self) -> None:
        self.resources: list[Declared] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        relative = args.name.removeprefix(f"{PROJECT}-")
        self.resources.append(Declared(args.typ, relative, dict(args.inputs), bool(args.custom), args.name))
        outputs = dict(args.inputs)
        digest = hashlib.sha256(args.name.encode()).hexdigest()
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = ("Ab1" + digest)[: int(args.inputs["length"])]
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = f"sha256:{digest}"
        elif args.typ == "docker:index/image:Image":
            outputs["repoDigest"] = f"{args.inputs['imageName']}@sha256:{digest}"
        elif args.typ == "kubernetes:discovery.k8s.io/v1:EndpointSlice" and args.resource_id:
            # The API server's own slice, as a cluster publishes it.
            outputs["endpoints"] = [{"addresses": [OFFLINE_API_SERVER]}]
            outputs["ports"] = [{"name": "https", "port": 6443, "protocol": "TCP"}]
        if args.typ.startswith("kubernetes:"):
            metadata = dict(outputs.get("metadata") or {})
            metadata.setdefault("name", args.name)
            outputs["metadata"] = metadata
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    # -- queries ---------------------------------------------------------

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, typ: str, name: str) -> Declared:
        matches = [r for r in self.of_type(typ) if r.name == name]
        assert len(matches) == 1, f"{len(matches)} {typ} named {name}: {[r.name for r in self.of_type(typ)]}"
        return matches[0]


class OfflineSupply:
    """What the platform pins, without a registry: an image's digest is the
    sha256 of its reference, and a chart from a repository or an OCI
    registry passes as the archive it would be; a local chart is checked
    for real (no network needed)."""

    def image_digest(self, reference: str) -> str:
        return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()

    def verified_chart(self, source: ChartSource, expected: str) -> str:
        if source.path:
            return ChartFetcher(Path("/nonexistent")).verified(source, expected)
        return f"/offline/charts/{source.name}-{source.version}-sha256-{expected}.tgz"


def stack_config(stack: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    return {k.split(":", 1)[1]: v for k, v in (data.get("config") or {}).items()}


def merge_config(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; objects are merged key by key, so
    an override of ``gateway.rateLimit`` keeps the rest of ``gateway``."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


def run_stack(
    stack: str,
    overrides: dict[str, Any] | None = None,
    *,
    base: bool = True,
    recorder: Recorder | None = None,
    specs: tuple[ServiceSpec, ...] = SERVICES,
    supply: Supply | None = None,
) -> tuple[Recorder, DataPlatform]:
    """Declares the platform of ``specs`` (the catalogue's by default) for
    ``stack`` under mocks; returns what it declared. Images and charts are
    pinned by ``supply`` (default: ``OfflineSupply``)."""
    config = stack_config(stack) if base else {}
    config.update(overrides or {})
    recorder = recorder or Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    )
    holder: dict[str, DataPlatform] = {}

    def program() -> None:
        holder["platform"] = DataPlatform(PROJECT, settings=load_settings(specs), specs=specs)

    with using(supply or OfflineSupply()):
        _sync_await(run_pulumi_func(program))
    return recorder, holder["platform"]


def run_program(stack: str, overrides: dict[str, Any] | None = None) -> tuple[Recorder, dict[str, Any]]:
    """Runs ``__main__.py`` itself under mocks; returns what it declared and
    the names and values it exported."""
    config = stack_config(stack)
    config.update(overrides or {})
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    )
    exported: dict[str, Any] = {}

    def program() -> None:
        original = pulumi.export
        pulumi.export = lambda name, value: exported.__setitem__(name, value)  # type: ignore[assignment]
        try:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        finally:
            pulumi.export = original

    with using(OfflineSupply()):
        _sync_await(run_pulumi_func(program))
    return recorder, exported


SECRET_SIG = "4dabf18193072939515e22adb298388d"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def unwrap(value: Any) -> Any:
    """Inputs as plain data, with Pulumi's secret wrappers removed."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def generated_secrets(recorder: Recorder) -> set[str]:
    """Every credential the stack generated (mocks make them deterministic)."""
    digest = lambda name: hashlib.sha256(name.encode()).hexdigest()  # noqa: E731
    return {
        ("Ab1" + digest(r.name))[: int(r.inputs["length"])]
        for r in recorder.of_type("random:index/randomPassword:RandomPassword")
    }
