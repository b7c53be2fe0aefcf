"""The policy pack under the real engine: ``pulumi preview --policy-pack
policy`` on both stacks' configurations, as a pull request runs it.

Each preview runs on an ephemeral stack in a throwaway state backend; prod
previews in render mode (no cluster). Without the Pulumi toolchain
(``scripts/bootstrap.sh``) these tests are skipped.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tools import render
from tools.e2e_prod.stack import load_overrides
from tools.harness import merge_config, render_to, stack_config

VIOLATION = re.compile(r"^\s*- \[(mandatory|advisory|disabled)\]\s+(\S+)\s+\((\S+): ([^)]+)\)")


def preview(stack: str, overrides: dict[str, Any]) -> tuple[int, list[tuple[str, str, str]], str]:
    """Previews ``Pulumi.<stack>.yaml``'s config with ``overrides`` and the
    pack; returns the exit code, the violations as (level, policy, resource
    name) and the output."""
    reason = render.missing_toolchain()
    if reason:
        pytest.skip(f"cannot preview with the real engine: {reason}")
    config = merge_config(stack_config(stack), overrides)
    # No registry is reached: prod images get placeholder digests, as in a render.
    config = merge_config(config, render.placeholder_digests(config))
    prefixed = {f"dataplatform:{key}": value for key, value in config.items()}
    with render.ephemeral_stack(f"policy-{secrets.token_hex(4)}", prefixed) as run:
        code, lines = run("preview", "--policy-pack", "policy", "--suppress-progress", timeout=600)
    found = [(m[1], m[2], m[4]) for m in map(VIOLATION.match, lines) if m]
    return code, found, "\n".join(lines)


def test_dev_preview_passes_the_pack_without_a_violation() -> None:
    code, found, output = preview("dev", {})
    assert code == 0, output[-3000:]
    assert "Policies:" in output, "the pack did not run"
    # Every running container is read-only and secret files are private
    # (mandatory), and nothing is left to advise.
    assert found == [], found


def test_prod_preview_passes_the_pack_without_a_cluster() -> None:
    render_dir = Path(tempfile.mkdtemp(prefix="dataplatform-policy-render-"))
    try:
        code, found, output = preview(
            "prod", {**render_to(str(render_dir)), "sparkOperator": {"install": False}}
        )
    finally:
        shutil.rmtree(render_dir, ignore_errors=True)
    assert code == 0, output[-3000:]
    assert "Policies:" in output, "the pack did not run"
    assert found == [], found


def test_prod_preview_with_the_operators_chart_passes_the_pack() -> None:
    """The prod stack as the local cluster deploys it: the Spark Operator's
    chart rendered from its source, its Deployments checked like the
    platform's (only the chart's own probe ports are advised on)."""
    overrides = load_overrides()
    chart = Path(overrides["sparkOperator"]["chartPath"])
    if not chart.is_dir():
        pytest.skip(f"no chart source at {chart} (scripts/spark-operator.sh chart)")
    render_dir = Path(tempfile.mkdtemp(prefix="dataplatform-policy-render-"))
    try:
        code, found, output = preview("prod", merge_config(overrides, render_to(str(render_dir))))
    finally:
        shutil.rmtree(render_dir, ignore_errors=True)
    assert code == 0, output[-3000:]
    assert "dataplatform-spark-operator:spark-operator/spark-operator-webhook" in output, "no chart rendered"
    assert not [f for f in found if f[0] == "mandatory"], found
    assert {(level, policy) for level, policy, _ in found} <= {
        ("advisory", "k8s-readiness-and-liveness-probes")
    }, found


def test_a_mandatory_violation_fails_the_preview() -> None:
    code, found, output = preview("dev", {"bindAddress": "0.0.0.0"})
    assert code != 0
    assert ("mandatory", "docker-ports-on-loopback", "dataplatform-gateway") in found, output[-3000:]
