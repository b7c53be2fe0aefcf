"""The dev run's state: its stack, the Docker engine's view of its containers, its stores and jobs."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import docker  # type: ignore[import-untyped]
import redis

from dataplatform.project import PROJECT
from tools.e2e_common.jobs_cli import check_succeeded, submit
from tools.e2e_common.pipeline import online_prefix
from tools.e2e_common.report import check, log
from tools.e2e_common.stack import EphemeralStack
from tools.e2e_common.stores import redis_admin, s3_client
from tools.e2e_common.stream import StreamStores


class DevStack(EphemeralStack):
    def __init__(self, name: str, rows: int) -> None:
        self.engine = docker.from_env(timeout=120)
        super().__init__(name, log)
        self.rows = rows
        self.prefix = f"dataplatform-{name}"

    # -- containers ---------------------------------------------------

    def containers(self) -> list[Any]:
        """The stack's containers: workloads and the carriers of their files."""
        found = []
        listed = [
            summary
            for label in ("dataplatform.workload", "dataplatform.files")
            for summary in self.engine.api.containers(
                all=True, filters={"label": label, "name": self.prefix + "-"}
            )
        ]
        for summary in listed:
            if not any(n.lstrip("/").startswith(self.prefix + "-") for n in summary["Names"]):
                continue
            # Containers of other projects may go away while we look.
            with contextlib.suppress(docker.errors.NotFound):
                found.append(self.engine.containers.get(summary["Id"]))
        return found

    def container(self, workload: str) -> Any:
        return self.engine.containers.get(f"{self.prefix}-{workload}")

    def health(self, container: Any) -> str:
        container.reload()
        state = container.attrs["State"]
        return str((state.get("Health") or {}).get("Status") or state.get("Status"))

    # -- jobs and stores ----------------------------------------------

    def submit(self, job: str, *args: str, expect_failure: bool = False) -> float:
        """``python -m jobs submit`` with the stack's own sizes (no size flags)."""
        returncode, seconds = submit(self, job, *args)
        if expect_failure:
            check(returncode != 0, f"job {job} {' '.join(args)} was expected to fail")
            return seconds
        check_succeeded(self, job, returncode)
        self.report.add(f"job {job}", f"{seconds:.1f} s")
        return seconds

    def stack_config_ports(self) -> dict[str, int]:
        assert self.stack is not None
        return dict(json.loads(self.stack.get_config(f"{PROJECT}:hostPorts").value))

    def redis_client(self) -> redis.Redis:
        return redis_admin(self.stack_config_ports()["redis"], self.outputs["redis_admin_password"])

    def online_features(self, entity: str) -> dict[Any, Any]:
        client = self.redis_client()
        return dict(client.hgetall(online_prefix(client) + entity))

    def s3(self) -> Any:
        return s3_client(self.outputs["minio_endpoint"], self.credentials())

    def stream_stores(self) -> StreamStores:
        return StreamStores(
            s3=self.s3(),
            endpoint=self.outputs["minio_endpoint"],
            credentials=self.credentials(),
            raw_bucket=self.outputs["buckets"]["raw"],
            redis=self.redis_client(),
            report=self.report,
            log=self.log,
        )
