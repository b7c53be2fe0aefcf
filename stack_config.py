"""The one reader of the stack's config: ``dataplatform:*`` keys in, ``Settings`` out.

Nothing else in the library reads ``pulumi.Config``; a program that uses the
components directly builds ``Settings`` (or each service's args) itself.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pulumi
import yaml

from dataplatform.config import Settings
from dataplatform.project import PROJECT
from dataplatform.services.catalog import SERVICES
from dataplatform.settings import Specs, allowed_keys, parse_settings, settings_model

# The repository: its stack settings files sit beside this module.
ROOT = Path(__file__).resolve().parent

# The CA bundle a TLS-inspecting proxy needs belongs to the machine, not the
# stack, so it may also come from the environment.
BUILD_CA_ENV = "DATAPLATFORM_BUILD_CA_FILE"


def _decode(value: Any) -> Any:
    """Config values arrive as strings; objects and arrays as JSON text."""
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if stripped[:1] in "{[" or stripped in ("true", "false") or re.match(r"^-?\d+$", stripped):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    return value


def _stack_file_keys() -> set[str]:
    """The ``dataplatform:*`` keys written in the stack's settings file."""
    path = ROOT / f"Pulumi.{pulumi.get_stack()}.yaml"
    if not path.is_file():
        return set()
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    prefix = f"{PROJECT}:"
    return {str(k)[len(prefix) :].split(".", 1)[0] for k in config if str(k).startswith(prefix)}


def raw_project_config(specs: Specs = SERVICES) -> dict[str, Any]:
    """Every ``dataplatform:*`` key set for the stack, so typos can be caught.

    ``pulumi.Config`` answers only for keys it is asked about: it is asked
    for every key the settings know, and for every key the stack's settings
    file names, so a misspelt key there is reported rather than ignored.
    """
    config = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key in sorted(set(allowed_keys(settings_model(specs))[()]) | _stack_file_keys()):
        full = f"{PROJECT}:{key}"
        # A secret key (the Ingress's private key, say) is read as it is:
        # the library keeps what it holds as Pulumi secrets where it uses them.
        value = pulumi.runtime.get_config(full) if pulumi.runtime.is_config_secret(full) else config.get(key)
        # Pulumi.yaml declares a default for every key (the engine requires a
        # value otherwise); an empty string there means "not set".
        if value is not None and value != "":
            raw[key] = _decode(value)
    return raw


def load_settings(specs: Specs = SERVICES) -> Settings:
    """The stack's settings, validated against ``specs`` (the catalogue's by default)."""
    raw = raw_project_config(specs)
    if "buildCaFile" not in raw and os.environ.get(BUILD_CA_ENV):
        raw["buildCaFile"] = os.environ[BUILD_CA_ENV]
    return parse_settings(raw, specs)
