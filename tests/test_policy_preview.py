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
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests import render

ROOT = Path(__file__).resolve().parents[1]
VIOLATION = re.compile(r"^\s*- \[(mandatory|advisory|disabled)\]\s+(\S+)\s+\((\S+): ([^)]+)\)")


def preview(
    stack_file: str, extra: dict[str, object], tmp: Path
) -> tuple[int, list[tuple[str, str, str]], str]:
    """Runs the preview; returns its exit code, the violations as (level,
    policy, resource name) and the output."""
    reason = render.missing_toolchain()
    if reason:
        pytest.skip(f"cannot preview with the real engine: {reason}")
    stack = f"policy-{secrets.token_hex(4)}"
    state = tmp / "state"
    state.mkdir()
    env = dict(render.toolchain_env())
    env.update(PULUMI_BACKEND_URL=f"file://{state}", PULUMI_CONFIG_PASSPHRASE=secrets.token_urlsafe(24))
    for name in ("PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN", "PULUMI_STACK", "KUBECONFIG"):
        env.pop(name, None)
    config_file = ROOT / f"Pulumi.{stack}.yaml"

    def pulumi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pulumi", *args, "--stack", stack, "--non-interactive", "--color", "never"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    try:
        init = pulumi("stack", "init", "--secrets-provider", "passphrase")
        assert init.returncode == 0, init.stderr
        config = dict(yaml.safe_load((ROOT / stack_file).read_text())["config"])
        for key, value in extra.items():
            full = f"dataplatform:{key}"
            merged = {**config.get(full, {}), **value} if isinstance(value, dict) else value
            config[full] = merged
        settings = yaml.safe_load(config_file.read_text()) or {}
        settings["config"] = config
        config_file.write_text(yaml.safe_dump(settings, sort_keys=False))
        run = pulumi("preview", "--policy-pack", "policy", "--suppress-progress")
        output = run.stdout + run.stderr
        found = [(m[1], m[2], m[4]) for m in map(VIOLATION.match, output.splitlines()) if m]
        return run.returncode, found, output
    finally:
        pulumi("stack", "rm", "--yes", "--force")
        config_file.unlink(missing_ok=True)
        shutil.rmtree(state, ignore_errors=True)


def test_dev_preview_passes_the_pack_with_the_expected_advisories(tmp_path: Path) -> None:
    code, found, output = preview("Pulumi.dev.yaml", {}, tmp_path)
    assert code == 0, output[-3000:]
    assert "Policies:" in output, "the pack did not run"
    assert not [v for v in found if v[0] == "mandatory"], found
    # Containers that receive files keep a writable root (the engine copies
    # them in before start), which the advisory policy points out.
    assert sorted(found) == sorted(
        ("advisory", "docker-read-only-root-filesystem", name)
        for name in ("gateway", "grafana", "inference", "minio", "minio-init", "prometheus", "redis")
    )


def test_prod_preview_passes_the_pack_without_a_cluster(tmp_path: Path) -> None:
    render_dir = Path(tempfile.mkdtemp(prefix="dataplatform-policy-render-"))
    try:
        code, found, output = preview(
            "Pulumi.prod.yaml",
            {"kubernetes": {"renderDir": str(render_dir)}, "sparkOperator": {"install": False}},
            tmp_path,
        )
    finally:
        shutil.rmtree(render_dir, ignore_errors=True)
    assert code == 0, output[-3000:]
    assert "Policies:" in output, "the pack did not run"
    assert found == [], found


def test_a_mandatory_violation_fails_the_preview(tmp_path: Path) -> None:
    code, found, output = preview("Pulumi.dev.yaml", {"bindAddress": "0.0.0.0"}, tmp_path)
    assert code != 0
    assert ("mandatory", "docker-ports-on-loopback", "gateway") in found, output[-3000:]
