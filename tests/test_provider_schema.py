"""The schema other Pulumi languages see for ``dataplatform:index:DataPlatform``.

provider/ serves the component as a Pulumi package; its schema is inferred
from type annotations (``DataPlatformArgs`` for the inputs, the component's
``pulumi.Output`` attributes for the outputs), so a change to either changes
what YAML, TypeScript, Go, C# and Java programs may pass and read. The
schema is taken twice: from the provider class the plugin serves, in this
process, and from ``pulumi package get-schema provider`` with the Pulumi
toolchain, which runs the plugin the way ``pulumi package add`` does.
"""

import importlib.util
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider

from tools.render import toolchain_env
from tools.repo import ROOT

PROVIDER_DIR = ROOT / "provider"
YAML_EXAMPLE = ROOT / "examples" / "yaml" / "Pulumi.yaml"
TOKEN = "dataplatform:index:DataPlatform"
ANY = "pulumi.json#/Any"

# Plain inputs: values a program writes, not outputs of other resources.
INPUTS: dict[str, dict[str, Any]] = {
    "config": {"type": "object", "additionalProperties": {"$ref": ANY, "plain": True}, "plain": True},
    "namespace": {"type": "string", "plain": True},
    "createNamespace": {"type": "boolean", "plain": True},
    "dockerHost": {"type": "string", "plain": True},
    "sparkOperator": {"type": "string", "plain": True},
}
OUTPUTS = {
    "targetTier",
    "namespace",
    "gatewayUrl",
    "grafanaUrl",
    "prometheusUrl",
    "minioEndpoint",
    "sparkMasterUrl",
}


def load_provider_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dataplatform_provider", PROVIDER_DIR / "__main__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The schema the plugin serves, built by the same provider class."""
    module = load_provider_module()
    provider = ComponentProvider(module.COMPONENTS, module.PACKAGE, version=module.package_version())
    assert provider.schema is not None
    loaded: dict[str, Any] = json.loads(provider.schema)
    return loaded


def resource(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = schema["resources"][TOKEN]
    return found


def test_package_is_named_after_the_library(schema: dict[str, Any]) -> None:
    assert schema["name"] == "dataplatform"
    assert schema["version"] == version("dataplatform")
    assert set(schema["resources"]) == {TOKEN}
    assert schema.get("types", {}) == {}


def test_the_component_is_a_remote_component(schema: dict[str, Any]) -> None:
    component = resource(schema)
    assert component["isComponent"] is True
    description = component["description"]
    assert description.startswith("A data/ML platform")
    # Written for other languages: no Python indentation in the text.
    assert "\n " not in description


def test_inputs(schema: dict[str, Any]) -> None:
    component = resource(schema)
    assert component["inputProperties"] == INPUTS
    # Every argument is optional, as in DataPlatformArgs (total=False).
    assert not component.get("requiredInputs")


def test_outputs(schema: dict[str, Any]) -> None:
    component = resource(schema)
    properties = component["properties"]
    assert set(properties) == OUTPUTS
    assert all(prop == {"type": "string"} for prop in properties.values()), properties
    assert set(component["required"]) == OUTPUTS


def test_yaml_example_uses_the_schema(schema: dict[str, Any]) -> None:
    """The YAML example names the package by its path and passes only inputs
    the schema declares; it reads only outputs the schema declares."""
    program = yaml.safe_load(YAML_EXAMPLE.read_text())
    assert (YAML_EXAMPLE.parent / program["packages"]["dataplatform"]).resolve() == PROVIDER_DIR
    platforms = [r for r in program["resources"].values() if r["type"] == TOKEN]
    assert len(platforms) == 1
    assert set(platforms[0]["properties"]) <= set(INPUTS)
    names = {name for name, r in program["resources"].items() if r["type"] == TOKEN}
    references = (re.finditer(r"\$\{(\w+)\.(\w+)\}", str(v)) for v in program["outputs"].values())
    read = {match[2] for matches in references for match in matches if match[1] in names}
    assert read and read <= OUTPUTS


# -- through the engine ----------------------------------------------------


def requirement_pins() -> dict[str, str]:
    """The provider plugins the provider's virtualenv pins (pulumi-NAME==V)."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"pulumi-([a-z0-9-]+)==(\S+)", line)
        if match:
            pins[match[1]] = match[2]
    return pins


@pytest.fixture
def engine_env() -> Iterator[dict[str, str]]:
    env = toolchain_env()
    path = env.get("PATH")
    missing = [tool for tool in ("pulumi", "pulumi-language-python") if shutil.which(tool, path=path) is None]
    if missing:
        pytest.skip(f"no Pulumi toolchain here ({', '.join(missing)} not found; run scripts/bootstrap.sh)")
    with tempfile.TemporaryDirectory(prefix="provider-schema-") as home:
        env = {**env, "PULUMI_HOME": home}
        offline = env.get("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "").lower() in ("1", "true")
        if offline:
            # Loading a plugin from source first installs the plugins its
            # packages require at exactly their versions, looked up in the
            # plugin cache only (never on PATH) and downloaded otherwise. The
            # offline toolchain's providers stand in for them.
            for name, pinned in requirement_pins().items():
                binary = shutil.which(f"pulumi-resource-{name}", path=path)
                if binary is None:
                    pytest.skip(f"the Pulumi toolchain has no pulumi-resource-{name}")
                plugin_dir = Path(home) / "plugins" / f"resource-{name}-v{pinned}"
                plugin_dir.mkdir(parents=True)
                (plugin_dir / f"pulumi-resource-{name}").symlink_to(binary)
        yield env


def test_engine_serves_the_same_schema(schema: dict[str, Any], engine_env: dict[str, str]) -> None:
    """``pulumi package get-schema`` runs the plugin in its own virtualenv
    (provider/venv, made from provider/requirements.txt on first use)."""
    result = subprocess.run(
        ["pulumi", "package", "get-schema", str(PROVIDER_DIR)],
        env=engine_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout)
    assert served["name"] == schema["name"]
    assert served["version"] == schema["version"]
    assert without_empty(served["resources"]) == without_empty(schema["resources"])


def without_empty(value: Any) -> Any:
    """``value`` without empty lists and objects, which the engine omits."""
    if isinstance(value, dict):
        return {k: without_empty(v) for k, v in value.items() if v not in ([], {})}
    return value


def test_provider_virtualenv_takes_the_library_from_this_checkout() -> None:
    """The plugin's virtualenv installs the repository's pins and, editable,
    the library itself: the engine runs pip in provider/, so paths are
    relative to it."""
    lines = (PROVIDER_DIR / "requirements.txt").read_text().splitlines()
    assert {"-r ../requirements.txt", "-e .."} <= {line.strip() for line in lines}
    manifest = yaml.safe_load((PROVIDER_DIR / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
