"""An ephemeral stack driven by the Automation API: engine output to a log file, timed ``up``, outputs."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Collection
from typing import Any

from pulumi import automation as auto

from dataplatform.project import PROJECT
from tools.e2e_common.report import Failure, Report, timed
from tools.repo import ROOT


def engine_config(config: dict[str, Any], secret: Collection[str] = ()) -> dict[str, auto.ConfigValue]:
    """``dataplatform:*`` config as the Automation API takes it: objects as
    JSON, the keys in ``secret`` encrypted in the stack's settings."""
    return {
        f"{PROJECT}:{k}": auto.ConfigValue(v if isinstance(v, str) else json.dumps(v), secret=k in secret)
        for k, v in config.items()
    }


class EphemeralStack:
    """A stack named for one run; what the engine prints goes to ``.e2e-<name>.log``."""

    def __init__(self, name: str, log: Callable[[str], None]) -> None:
        self.name = name
        self.log = log
        self.report = Report()
        self.log_file = open(ROOT / f".e2e-{name}.log", "w")  # noqa: SIM115 - closed by close()
        self.stack: auto.Stack | None = None
        self.outputs: dict[str, Any] = {}
        self.last_output = ""

    def out(self, line: str) -> None:
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def close(self) -> None:
        self.log_file.close()

    def up(self, what: str, **kwargs: Any) -> tuple[auto.UpResult, float]:
        assert self.stack is not None
        self.log(f"pulumi up ({what}); engine output in {self.log_file.name}")
        try:
            return timed(lambda: self.stack.up(on_output=self.out, color="never", **kwargs))  # type: ignore[union-attr]
        except auto.CommandError as exc:
            raise Failure(f"pulumi up ({what}) failed:\n{str(exc)[-3000:]}") from None

    def destroy(self) -> None:
        assert self.stack is not None
        self.stack.destroy(on_output=self.out, color="never")

    def refresh_outputs(self) -> None:
        assert self.stack is not None
        self.outputs = {k: v.value for k, v in self.stack.outputs().items()}

    def credentials(self) -> dict[str, str]:
        return dict(self.outputs["platform_credentials"])

    def forget(self) -> None:
        """The stack's record in the local backend and its settings file, once it is gone."""
        with contextlib.suppress(auto.CommandError):
            auto.LocalWorkspace(work_dir=str(ROOT)).remove_stack(self.name)
        (ROOT / f"Pulumi.{self.name}.yaml").unlink(missing_ok=True)


class Timeline:
    """When each resource's step began and ended during one ``up``, from the
    engine's events as they arrive (``on_event``): what an ``up`` waited
    for, in order."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.began: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    def __call__(self, event: auto.EngineEvent) -> None:
        now = time.monotonic() - self.started
        if event.resource_pre_event and not event.resource_pre_event.planning:
            self.began.setdefault(event.resource_pre_event.metadata.urn, now)
        elif event.res_outputs_event:
            self.ended[event.res_outputs_event.metadata.urn] = now

    def first_step(self) -> float:
        """Seconds from the start to the first resource step: the CLI's and
        the program's start."""
        return min(self.began.values(), default=0.0)

    def slowest(self, count: int = 8) -> list[str]:
        """The ``count`` resources that finished last, each as ``type name:
        began-ended s``."""
        rows = sorted(self.ended.items(), key=lambda item: -item[1])[:count]
        return [
            f"{urn.rsplit('::', 2)[-2].rsplit('$', 1)[-1]} {urn.rsplit('::', 1)[-1]}: "
            f"{self.began.get(urn, 0.0):.1f}-{ended:.1f} s"
            for urn, ended in rows
        ]
