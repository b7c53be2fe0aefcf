"""Dev steps 1 and 5: the stack up, healthy, hardened and on 127.0.0.1; a second ``up`` changes nothing."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from pulumi import automation as auto
from pulumi.automation import OpType

from tools.e2e.machine import engine_config
from tools.e2e.stack import DevStack
from tools.e2e_common.report import check
from tools.repo import ROOT


def deploy(dev: DevStack, overrides: dict[str, Any]) -> None:
    dev.stack = auto.create_or_select_stack(stack_name=dev.name, work_dir=str(ROOT))
    dev.stack.set_all_config(engine_config(overrides))
    result, seconds = dev.up("first")
    changes = result.summary.resource_changes or {}
    dev.report.add("resources created", str(changes.get(OpType.CREATE, 0)))
    dev.report.add("up to healthy (images cached)", f"{seconds:.1f} s")
    dev.refresh_outputs()
    long_running = [c for c in dev.containers() if c.attrs["HostConfig"]["RestartPolicy"]["Name"] != "no"]
    check(bool(long_running), "no platform container is running")
    unhealthy = {c.name: dev.health(c) for c in long_running if dev.health(c) != "healthy"}
    check(not unhealthy, f"containers not healthy after up: {unhealthy}")
    dev.report.ok(f"{len(long_running)} long-running containers healthy")
    for c in long_running:
        for binding in (c.attrs["HostConfig"].get("PortBindings") or {}).values():
            for b in binding or []:
                check(b["HostIp"] == "127.0.0.1", f"{c.name} publishes on {b['HostIp']}")
    dev.report.ok("every published port bound to 127.0.0.1")
    hardening(dev, long_running)


def hardening(dev: DevStack, running: list[Any]) -> None:
    """Read-only roots, and secret files private to each container's user."""
    writable = [c.name for c in running if not c.attrs["HostConfig"]["ReadonlyRootfs"]]
    check(not writable, f"containers with a writable root filesystem: {writable}")
    checked = 0
    for c in running:
        if not any(m["Destination"] == "/run/secrets" for m in c.attrs["Mounts"]):
            continue
        uid = int(c.attrs["Config"]["User"].split(":")[0])
        stream, _ = c.get_archive("/run/secrets")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            for member in archive.getmembers():
                if not member.isfile():
                    continue
                mode = member.mode & 0o777
                check(
                    mode == 0o400 and member.uid == uid,
                    f"{c.name}: {member.name} is {oct(mode)} owned by {member.uid}, not 0o400 by {uid}",
                )
                checked += 1
    check(checked > 0, "no secret file found to check")
    dev.report.ok(
        f"{len(running)} running containers read-only; {checked} secret files 0400, owned by their user"
    )


def no_op(dev: DevStack) -> None:
    result, seconds = dev.up("no-op")
    changes = {k: v for k, v in (result.summary.resource_changes or {}).items() if k != "same"}
    check(not changes, f"second up changed resources: {changes}")
    dev.report.add("no-op up", f"{seconds:.1f} s, 0 changes")
