from __future__ import annotations

from collections.abc import Iterator

import pytest

from dataplatform.platform import DataPlatform
from dataplatform.supply import using
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
