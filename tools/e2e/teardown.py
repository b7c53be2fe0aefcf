"""Dev step 8 and failures: destroy leaves no container or network and keeps (or purges) the data volumes."""

from __future__ import annotations

from pulumi import automation as auto

from tools.e2e.stack import DevStack
from tools.e2e_common.report import check, log, timed


def destroy(dev: DevStack, purge: bool) -> None:
    volumes_before = {v.name for v in dev.engine.volumes.list(filters={"label": "dataplatform.data=true"})}
    mine = {v for v in volumes_before if v.startswith(dev.prefix + "-")}
    _, seconds = timed(dev.destroy)
    dev.report.add("destroy", f"{seconds:.1f} s")
    left = [c.name for c in dev.containers()]
    check(not left, f"containers left after destroy: {left}")
    check(not dev.engine.networks.list(names=[dev.prefix]), "network left after destroy")
    kept = {v.name for v in dev.engine.volumes.list()} & mine
    if purge:
        check(bool(mine) and not kept, f"volumes left despite purgeOnDestroy: {kept}")
        dev.report.ok(f"destroy with purgeOnDestroy removed {len(mine)} data volumes")
    else:
        check(kept == mine and bool(mine), f"data volumes not kept: had {mine}, kept {kept}")
        dev.report.ok(f"destroy kept {len(kept)} data volumes")
        for name in kept:
            dev.engine.volumes.get(name).remove()


def cleanup(dev: DevStack) -> None:
    """After a failure: leave nothing of this run behind."""
    if dev.stack is None:
        return
    try:
        dev.destroy()
    except auto.CommandError as exc:
        log(f"cleanup: destroy failed: {str(exc)[-500:]}")
    for volume in dev.engine.volumes.list(filters={"label": "dataplatform.data=true"}):
        if volume.name.startswith(dev.prefix + "-"):
            volume.remove(force=True)
