"""A job that cannot get resources fails within a bounded time, with why."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs import submit_dev, submit_prod
from jobs.errors import JobError
from jobs.launch import SparkResources
from jobs.stack_outputs import StackTarget, SubmitOptions
from jobs.tests.conftest import fake_tool


def master_state(*workers: tuple[int, int, int, int]) -> dict[str, Any]:
    return {
        "workers": [
            {
                "id": f"worker-20250101000000-172.18.0.{i + 2}-35000",
                "cores": cores,
                "coresfree": cores_free,
                "memory": memory,
                "memoryfree": memory_free,
                "state": "ALIVE",
            }
            for i, (cores, cores_free, memory, memory_free) in enumerate(workers)
        ]
        + [{"id": "worker-dead", "cores": 64, "memory": 65536, "state": "DEAD"}]
    }


@pytest.fixture
def master_ui() -> Iterator[tuple[str, dict[str, Any]]]:
    """A loopback stand-in for the standalone master's UI JSON."""
    state: dict[str, Any] = master_state((1, 1, 1024, 1024), (1, 0, 1024, 256))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(state).encode()
            self.send_response(200 if self.path == "/json/" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            del args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()


def test_workers_are_read_from_the_master(master_ui: tuple[str, dict[str, Any]]) -> None:
    url, _ = master_ui
    workers = submit_dev.standalone_workers(url)
    assert workers is not None
    assert [(w.cores, w.memory_mib, w.memory_free_mib) for w in workers] == [(1, 1024, 1024), (1, 1024, 256)]
    assert submit_dev.standalone_workers("http://127.0.0.1:9") is None


def test_an_executor_that_fits_no_worker_is_refused_before_it_starts(
    master_ui: tuple[str, dict[str, Any]],
) -> None:
    url, _ = master_ui
    workers = submit_dev.standalone_workers(url)
    submit_dev.check_fits(SparkResources(executor_memory_mib=768), workers)
    with pytest.raises(JobError) as raised:
        submit_dev.check_fits(SparkResources(executor_memory_mib=2048), workers)
    message = str(raised.value)
    assert "executors of 1 core(s) and 2048 MiB, which fit no worker" in message
    assert "2 alive worker(s): 172.18.0.2: 1 cores/1024 MiB (1 cores/1024 MiB free)" in message
    with pytest.raises(JobError, match="no alive worker"):
        submit_dev.check_fits(SparkResources(), [])


def dev_target(**spark_submit: Any) -> StackTarget:
    """A dev stack's outputs with ``spark_submit`` entries added or replaced."""
    base = {
        "tier": "dev",
        "image": "i",
        "master_url": "spark://m:7077",
        "network": "n",
        "env": {"DP_RAW_BUCKET": "raw"},
    }
    return StackTarget.from_outputs(
        {
            "spark_submit": {**base, **spark_submit},
            "platform_credentials": {},
            "docker": {"host": None, "prefix": "dataplatform-dev"},
        },
        "dev",
    )


def test_stack_sizes_are_the_default_and_flags_override_them() -> None:
    target = dev_target(resources={"executorMemoryMib": 768, "driverMemoryMib": 768, "maxExecutors": 2})
    assert target.resources() == SparkResources(
        driver_memory_mib=768, executor_memory_mib=768, max_executors=2
    )
    changed = target.resources(SubmitOptions(executor_memory="1g", executor_cores=2))
    assert (changed.executor_memory_mib, changed.executor_cores, changed.driver_memory_mib) == (1024, 2, 768)
    with pytest.raises(JobError, match="not a memory size"):
        target.resources(SubmitOptions(executor_memory="lots"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_starvation_is_measured_from_spark_s_warnings() -> None:
    clock = Clock()
    watch = submit_dev.StarvationWatch(limit=60, interval=5, clock=clock)
    watch.line("INFO DAGScheduler: Submitting 2 missing tasks")
    assert watch.waited() == 0
    clock.now = 5
    warning = f"WARN TaskSchedulerImpl: {submit_dev.STARVATION_MARKER}; check your cluster UI"
    watch.line(warning)
    assert watch.waited() == 5  # the first warning comes one interval after the tasks
    for t in range(10, 60, 5):
        clock.now = t
        watch.line(warning)
    assert not watch.starved()
    clock.now = 60
    watch.line(warning)
    assert watch.starved()


def test_executors_arriving_end_the_wait() -> None:
    clock = Clock()
    watch = submit_dev.StarvationWatch(limit=60, interval=5, clock=clock)
    clock.now = 5
    watch.line(submit_dev.STARVATION_MARKER)
    clock.now = 30  # no warning for more than two intervals: executors came
    assert watch.waited() == 0
    clock.now = 100  # a later stage starves afresh
    watch.line(submit_dev.STARVATION_MARKER)
    assert watch.waited() == 5


def test_a_starving_driver_is_stopped_and_the_reason_given(
    tmp_path: Path,
    fake_bin: Path,
    master_ui: tuple[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end through submit_dev.run with a fake docker: the 'driver'
    only ever logs Spark's starvation warning; submit kills it within the limit."""
    url, _ = master_ui
    killed = tmp_path / "killed"
    fake_tool(
        fake_bin,
        "docker",
        "import os, signal, sys, time\n"
        "if sys.argv[1] == 'kill':\n"
        f"    open({str(killed)!r}, 'w').write(sys.argv[2])\n"
        f"    os.kill(int(open({str(tmp_path / 'pid')!r}).read()), signal.SIGTERM)\n"
        "    sys.exit(0)\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\n"
        "while True:\n"
        f"    print('WARN TaskSchedulerImpl: {submit_dev.STARVATION_MARKER}', flush=True)\n"
        "    time.sleep(0.2)\n",
    )
    monkeypatch.setattr(submit_dev, "STARVATION_INTERVAL_SECONDS", 0.2)
    target = dev_target(master_ui_url=url, resources={"executorMemoryMib": 768})
    started = time.monotonic()
    with pytest.raises(JobError) as raised:
        submit_dev.run("datagen", [], target, SubmitOptions(schedule_timeout=2))
    elapsed = time.monotonic() - started
    assert elapsed < 10
    assert killed.read_text().startswith("dataplatform-dev-job-datagen-")
    message = str(raised.value)
    assert message.startswith(
        "job datagen got no executor in 2 s: it asks for executors of 1 core(s) and 768 MiB"
    )
    assert "2 alive worker(s)" in message


def pod(role: str, unschedulable: str | None = None, phase: str = "Pending") -> submit_prod.PodState:
    return submit_prod.PodState(f"p-{role}", role, phase, unschedulable)


def test_unschedulable_pods_fail_with_the_scheduler_s_reason() -> None:
    reason = "0/1 nodes are available: 1 Insufficient memory."
    watch = submit_prod.SchedulingWatch(limit=60)
    assert watch.check(0, "SUBMITTED", [pod("driver", reason)]) is None
    assert watch.check(59, "SUBMITTED", [pod("driver", reason)]) is None
    assert watch.check(60, "SUBMITTED", [pod("driver", reason)]) == (
        f"the driver pod cannot be scheduled: {reason}"
    )
    # Executors: only when none of them can be placed.
    watch = submit_prod.SchedulingWatch(limit=10)
    running = pod("driver", phase="Running")
    mixed = [running, pod("executor", reason), pod("executor", phase="Running")]
    assert watch.check(0, "RUNNING", mixed) is None
    assert watch.check(0, "RUNNING", [running, pod("executor", reason)]) is None
    assert watch.check(10, "RUNNING", [running, pod("executor", reason)]) == (
        f"no executor pod can be scheduled: {reason}"
    )
    # The problem must last: a pod placed in between resets the clock.
    watch = submit_prod.SchedulingWatch(limit=10)
    watch.check(0, "SUBMITTED", [pod("driver", reason)])
    watch.check(5, "RUNNING", [running])
    assert watch.check(12, "RUNNING", [running, pod("executor", reason)]) is None


def test_an_application_the_operator_never_takes_up_fails() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(submit_prod.SchedulingError, match="Spark Operator has not taken the application up"):
        submit_prod.wait_for_application(
            lambda: submit_prod.AppStatus(None, None, None, None),
            None,
            timeout=3600,
            poll_seconds=5,
            pods=list,
            schedule_timeout=60,
            clock=lambda: now[0],
            sleep=sleep,
            report=lambda _: None,
        )
    assert now[0] <= 65


def test_pod_state_reads_the_scheduler_condition() -> None:
    state = submit_prod.PodState.from_resource(
        {
            "metadata": {"name": "dp-x-driver", "labels": {"spark-role": "driver"}},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient cpu.",
                    }
                ],
            },
        }
    )
    reason = "0/1 nodes are available: 1 Insufficient cpu."
    assert state == submit_prod.PodState("dp-x-driver", "driver", "Pending", reason)
