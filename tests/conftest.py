from __future__ import annotations

import pytest

from dataplatform.platform import DataPlatform
from tools.harness import Recorder, run_stack


@pytest.fixture(scope="module")
def dev() -> tuple[Recorder, DataPlatform]:
    return run_stack("dev")


@pytest.fixture(scope="module")
def prod() -> tuple[Recorder, DataPlatform]:
    return run_stack("prod")
