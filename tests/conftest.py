from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplatform.platform import DataPlatform
from dataplatform.supply import using
from tools import render
from tools.harness import OfflineSupply, Recorder, run_stack


@pytest.fixture(autouse=True)
def offline_registry() -> Iterator[None]:
    """No test reaches a registry: a prod platform built outside the
    harness pins its images and chart with the harness's offline supply."""
    with using(OfflineSupply()):
        yield


@pytest.fixture(scope="module")
def dev() -> tuple[Recorder, DataPlatform]:
    return run_stack("dev")


@pytest.fixture(scope="module")
def prod() -> tuple[Recorder, DataPlatform]:
    return run_stack("prod")


@pytest.fixture(scope="session")
def rendered() -> Iterator[render.Rendered]:
    """The prod stack rendered once per session by the real engine
    (``tools/render.py``), for every module that checks the manifests.
    Skips without the Pulumi toolchain (``scripts/bootstrap.sh``)."""
    reason = render.missing_toolchain()
    if reason:
        pytest.skip(f"cannot render with the real engine: {reason}")
    with tempfile.TemporaryDirectory(prefix="dataplatform-render-") as tmp:
        # The manifests stay in the directory while the session runs (the
        # linter reads them there); it holds Secrets in plain text and is
        # gone when the session ends.
        yield render.render(Path(tmp) / "manifests", on_output=lambda _line: None)
