"""Running a submitted job on the dev stack's standalone Spark cluster, in a one-shot driver container.

A Spark container on the stack's Docker network, on the Docker host the
stack recorded (``DOCKER_HOST``) and named after the stack's name prefix,
runs ``spark-submit`` in client mode against the standalone master;
credentials are files in a private temporary directory mounted at
``/run/secrets``. Before it starts, the master is asked what its workers
offer, and a job whose executors fit no worker is refused; a job that still
gets no executor within ``schedule_timeout`` is stopped with what it asked
for and what the cluster offers.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jobs import uploads
from jobs.conventions import SECRETS_DIR
from jobs.errors import JobError
from jobs.launch import SPARK_UID, SparkResources, spark_submit_command
from jobs.stack_outputs import StackTarget, SubmitOptions, job_environment, secret_values

# Spark repeats this warning while tasks wait for executors (TaskSchedulerImpl).
STARVATION_MARKER = "Initial job has not accepted any resources"
STARVATION_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class Worker:
    id: str
    cores: int
    cores_free: int
    memory_mib: int
    memory_free_mib: int


def standalone_workers(master_ui_url: str, timeout: float = 5.0) -> list[Worker] | None:
    """Alive workers of a standalone master (its UI's JSON), or None if the
    UI cannot be reached from here."""
    url = master_ui_url.rstrip("/") + "/json/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the stack's own URL
            state = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return [
        Worker(
            id=str(w.get("id", "?")),
            cores=int(w.get("cores", 0)),
            cores_free=int(w.get("coresfree", 0)),
            memory_mib=int(w.get("memory", 0)),
            memory_free_mib=int(w.get("memoryfree", 0)),
        )
        for w in state.get("workers", [])
        if w.get("state") == "ALIVE"
    ]


def describe_workers(workers: Sequence[Worker]) -> str:
    if not workers:
        return "no alive worker"
    parts = [
        f"{w.id.split('-')[-2] if w.id.count('-') >= 2 else w.id}: {w.cores} cores/{w.memory_mib} MiB "
        f"({w.cores_free} cores/{w.memory_free_mib} MiB free)"
        for w in workers
    ]
    return f"{len(workers)} alive worker(s): " + "; ".join(parts)


def check_fits(resources: SparkResources, workers: Sequence[Worker] | None) -> None:
    """Refuse a job whose executors fit no worker: it would wait for ever."""
    if workers is None:
        return
    asked = f"executors of {resources.executor_cores} core(s) and {resources.executor_memory_mib} MiB"
    if not workers:
        raise JobError(f"the job asks for {asked}, but the Spark master has no alive worker")
    if not any(
        w.cores >= resources.executor_cores and w.memory_mib >= resources.executor_memory_mib for w in workers
    ):
        raise JobError(
            f"the job asks for {asked}, which fit no worker: the cluster offers {describe_workers(workers)}; "
            "ask for less (--executor-memory, --executor-cores) or give the workers more "
            "(dataplatform:spark.workerMemory, spark.workerCores)"
        )


def docker_command(
    job: str,
    job_args: Sequence[str],
    target: StackTarget,
    *,
    secrets_dir: str,
    container_name: str,
    resources: SparkResources | None = None,
    group_add: int | None = None,
) -> list[str]:
    """``docker run`` for a one-shot driver container on the dev network."""
    spark = target.spark_submit
    sizes = resources or target.resources()
    command = [
        "docker",
        "run",
        "--rm",
        "--init",
        "--name",
        container_name,
        "--network",
        str(spark["network"]),
        "--user",
        str(SPARK_UID),
        "--read-only",
        "--tmpfs",
        "/tmp",  # noqa: S108 - the container's own tmpfs
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        f"{secrets_dir}:{SECRETS_DIR}:ro",
        "-e",
        "HOME=/tmp",
    ]
    if group_add is not None:
        command += ["--group-add", str(group_add)]
    for key, value in sorted(job_environment(target).items()):
        command += ["-e", f"{key}={value}"]
    conf = {**target.conf, "spark.starvation.timeout": f"{round(STARVATION_INTERVAL_SECONDS * 1000)}ms"}
    command += [
        str(spark["image"]),
        *spark_submit_command(
            str(spark["master_url"]), job, job_args, conf, sizes, driver_host=container_name
        ),
    ]
    return command


def write_secret_files(directory: str, values: Mapping[str, str]) -> int | None:
    """Write secrets readable by the container's user only.

    As root, files are chowned to the Spark user and kept 0600. Otherwise they
    stay the caller's, readable by the caller's group (0640), and the
    container joins that group; returns the group to add, if any.
    """
    as_root = os.geteuid() == 0
    mode = 0o600 if as_root else 0o640
    for name, value in values.items():
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        if as_root:
            os.chown(path, SPARK_UID, SPARK_UID)
    if as_root:
        os.chown(directory, SPARK_UID, SPARK_UID)
        os.chmod(directory, 0o500)
        return None
    os.chmod(directory, 0o750)  # noqa: S103 - group is the caller's own, joined by the container
    return os.getegid()


class StarvationWatch:
    """Notices a driver that has waited too long for its first executors.

    Spark warns every ``interval`` seconds while a task set waits for
    resources, the first time ``interval`` seconds after it was submitted. A
    gap of two intervals without the warning means executors came.
    """

    def __init__(self, limit: float, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.interval, self.clock = limit, interval, clock
        self.since: float | None = None
        self.last: float | None = None

    def line(self, text: str) -> None:
        if STARVATION_MARKER not in text:
            return
        now = self.clock()
        if self.last is None or now - self.last > 2 * self.interval:
            self.since = now - self.interval
        self.last = now

    def waited(self) -> float:
        """Seconds the job has been waiting for executors, 0 if it is not."""
        if self.since is None or self.last is None:
            return 0.0
        now = self.clock()
        if now - self.last > 2 * self.interval:
            return 0.0
        return now - self.since

    def starved(self) -> bool:
        return self.waited() >= self.limit


def stream(
    command: Sequence[str],
    tail: collections.deque[str],
    watch: StarvationWatch | None = None,
    on_starved: Callable[[], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run a command, echoing its combined output and keeping the last lines;
    ``on_starved`` is called once if ``watch`` says the job starves."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
    ) as process:
        fired = threading.Event()

        def check() -> None:
            while process.poll() is None and not fired.is_set():
                if watch is not None and watch.starved():
                    fired.set()
                    if on_starved is not None:
                        on_starved()
                    return
                time.sleep(0.5)

        checker = threading.Thread(target=check, daemon=True)
        checker.start()
        for line in process.stdout or ():
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))
            if watch is not None:
                watch.line(line)
        code = process.wait()
        fired.set()
        return code


def container_name(prefix: str, job: str, suffix: str) -> str:
    """``<prefix>-job-<job>-<suffix>``, also the driver's host name on the
    network: lower-case letters, digits and hyphens, at most 63 characters."""
    tail = f"-job-{job.replace('_', '-')}-{suffix}"
    head = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[: 63 - len(tail)].rstrip("-")
    return (head or "dp") + tail


def run(job: str, job_args: Sequence[str], target: StackTarget, options: SubmitOptions) -> int:
    """Run the job to its end; returns the driver container's exit code."""
    docker = target.docker()
    if shutil.which("docker") is None:
        raise JobError("docker is not on PATH")
    docker_env = docker.environment()
    resources = target.resources(options)
    master_ui = str(target.spark_submit.get("master_ui_url") or "")
    workers = standalone_workers(master_ui) if master_ui else None
    check_fits(resources, workers)
    job_args = uploads.stage_local_inputs(job, job_args, target.spark_submit, target.credentials)
    container = container_name(docker.prefix, job, uuid.uuid4().hex[:8])
    tail: collections.deque[str] = collections.deque(maxlen=options.tail_lines)
    watch = StarvationWatch(options.schedule_timeout, STARVATION_INTERVAL_SECONDS)
    starved: list[str] = []

    def stop_starved() -> None:
        offered = standalone_workers(master_ui) if master_ui else None
        starved.append(
            f"job {job} got no executor in {options.schedule_timeout:.0f} s: it asks for executors of "
            f"{resources.executor_cores} core(s) and {resources.executor_memory_mib} MiB; the cluster offers "
            + (describe_workers(offered) if offered is not None else "(the master's UI cannot be reached)")
            + "; other applications may hold the workers"
        )
        subprocess.run(["docker", "kill", container], capture_output=True, check=False, env=docker_env)

    parent = tempfile.mkdtemp(prefix="dp-job-")
    try:
        secrets_dir = os.path.join(parent, "secrets")
        os.mkdir(secrets_dir, 0o700)
        group = write_secret_files(secrets_dir, secret_values(target))
        # Traversable by the container's user only (see write_secret_files).
        os.chmod(parent, 0o750 if group is not None else 0o711)
        command = docker_command(
            job,
            job_args,
            target,
            secrets_dir=secrets_dir,
            container_name=container,
            resources=resources,
            group_add=group,
        )
        where = f" on Docker host {docker.host}" if docker.host else ""
        print(f"submitting {job} to {target.spark_submit['master_url']}{where}: {resources.describe()}")
        code = stream(command, tail, watch, stop_starved, env=docker_env)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    if starved:
        raise JobError(starved[0])
    if code != 0:
        print(f"\njob {job} failed: container exited with code {code}; last lines:", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
    return code
