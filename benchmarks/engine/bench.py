"""How long the Pulumi engine takes on this project, and where the time goes.

Not a test: run it by hand (``make bench-engine``) and compare the figures.

    python -m benchmarks.engine.bench [--runs 3] [--no-dev-up] [--timeline] [--json FILE] [--smoke]

With the toolchain of ``$DATAPLATFORM_CACHE`` (default ~/.cache/dataplatform;
its env.sh puts the CLI and plugins on PATH), on ephemeral stacks in
throwaway state backends, it times:

- prod: ``pulumi preview`` in render mode (Pulumi.prod.yaml, manifests to a
  temporary directory, the Spark Operator's chart left out, as
  ``tools.render`` configures it): one cold run, then ``--runs`` warm ones;
- dev, unless ``--no-dev-up`` or no Docker engine answers: Pulumi.dev.yaml
  plus what this machine needs (free host ports, stand-in images, as
  ``tools.e2e`` sets them) deployed with ``pulumi up``; then ``--runs``
  no-op ``make up`` of that stack (bootstrap's checks, then ``pulumi up
  --refresh --skip-preview``; its goal: a median of 5 s at most), no-op
  ``pulumi up --yes`` (each must change nothing; it runs the program
  twice, for its preview and for the update), the same with
  ``--skip-preview``, and ``pulumi preview``; then ``pulumi destroy``,
  volumes included;
- the pieces each run pays: the CLI's start, each plugin's start up to its
  handshake (the port on its first line), the program's imports; the CPU
  of each program the engine starts, in one more warm run of each stack;
  with ``--timeline``, the engine's longest silences in one verbose warm
  run of each stack, which say what it waited for.

Wall seconds and CPU seconds (the process and all it waited for) are shown
side by side: other work on a shared machine stretches wall times, not CPU
times. The load average is printed with each figure.

``--smoke`` is the short pass of ``make bench-smoke`` (``benchmarks/modes.py``):
one warm run of each command, the dev stack still deployed and destroyed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import modes
from benchmarks.loadgen import exit_on_sigterm
from tools.harness import merge_config, stack_config
from tools.render import PROJECT, ROOT, ephemeral_stack, toolchain_env
from tools.render import stack_config as render_config
from tools.signals import deliver_sigint

MAKE_UP = "dev: make up, no changes"
# Each goal is met by the median of the warm runs.
GOALS = {MAKE_UP: 5.0, "prod: pulumi preview (render)": 10.0}
PLUGINS = (
    "pulumi-language-python",
    "pulumi-resource-kubernetes",
    "pulumi-resource-docker",
    "pulumi-resource-random",
)
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ProcessSampler:
    """CPU seconds of every process below this one, by program, read from
    /proc every 50 ms while a command runs (a process that lives shorter
    than that may be missed)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    @staticmethod
    def _label(pid: int) -> str:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return "?"
        args = [a.decode(errors="replace") for a in argv if a]
        if not args:
            return "?"
        name = os.path.basename(args[0])
        if name.startswith("python") and len(args) > 1:
            if args[1] == "-c":
                # The language host starts the program's executor through a
                # short script; its other scripts take no path.
                return os.path.basename(args[3]) if len(args) > 3 else f"{name} -c (plugin discovery, About)"
            if args[1].startswith("-"):
                return f"{name} {' '.join(args[1:3])}"
            return os.path.basename(args[1])
        return name

    def _sample(self) -> None:
        me = os.getpid()
        parents: dict[int, int] = {}
        stats: dict[int, tuple[int, float]] = {}
        for pid, fields in proc_stats():
            parents[pid] = int(fields[1])
            # utime and stime, then the start time that tells reused pids apart.
            stats[pid] = (int(fields[19]), (int(fields[11]) + int(fields[12])) / self.TICK)
        for pid, (started, cpu) in stats.items():
            ancestor = parents.get(pid)
            while ancestor and ancestor != me:
                ancestor = parents.get(ancestor)
            if ancestor != me:
                continue
            # Read each time: a child shows its parent's command line until
            # it calls exec, and an exiting process shows none.
            key = (pid, started)
            label = self._label(pid)
            if label == "?" and key in self.seen:
                label = self.seen[key][0]
            self.seen[key] = (label, cpu)

    def by_program(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for label, cpu in self.seen.values():
            totals[label] = totals.get(label, 0.0) + cpu
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


@dataclass
class Sample:
    wall: float
    cpu: float
    load: float


@dataclass
class Figure:
    name: str
    samples: list[Sample] = field(default_factory=list)
    cold: Sample | None = None
    note: str = ""

    def line(self) -> str:
        def one(s: Sample) -> str:
            return f"{s.wall:6.2f} s ({s.cpu:5.2f} CPU)"

        cold = one(self.cold) if self.cold else " " * 20
        if self.samples:
            walls = [s.wall for s in self.samples]
            best = min(self.samples, key=lambda s: s.wall)
            warm = f"{one(best)}  median {statistics.median(walls):6.2f} s"
            loads = f"load {min(s.load for s in self.samples):.1f}-{max(s.load for s in self.samples):.1f}"
        else:
            warm, loads = " " * 38, ""
        goal = GOALS.get(self.name)
        verdict = ""
        if goal is not None and self.samples:
            verdict = f"goal {goal:.0f} s: {'met' if statistics.median(walls) <= goal else 'missed'}"
        return f"{self.name:<38} {cold}  {warm}  {loads}  {verdict}  {self.note}".rstrip()

    def record(self) -> dict[str, Any]:
        """The figure as data, for ``--json``."""
        return {
            "name": self.name,
            "cold": asdict(self.cold) if self.cold else None,
            "samples": [asdict(s) for s in self.samples],
            "goal_s": GOALS.get(self.name),
            "note": self.note,
        }


def measure(fn: Callable[[], Any]) -> tuple[Any, Sample]:
    before_load = load()
    cpu = children_cpu()
    start = time.monotonic()
    result = fn()
    return result, Sample(time.monotonic() - start, children_cpu() - cpu, before_load)


# -- pieces ---------------------------------------------------------------


def handshake(path: str, env: dict[str, str]) -> Sample:
    """Start a plugin and wait for the port it prints first, as the engine does."""
    cpu = children_cpu()
    before = load()
    start = time.monotonic()
    proc = subprocess.Popen(
        [path], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    wall = time.monotonic() - start
    proc.terminate()
    proc.wait()
    if not port.isdigit():
        raise RuntimeError(f"{path} printed {port!r} instead of a port")
    return Sample(wall, children_cpu() - cpu, before)


def import_profile(env: dict[str, str]) -> tuple[Sample, list[tuple[str, float]]]:
    """The program's imports (``__main__.py`` minus running it), and the
    packages that take longest to import."""
    cmd = [str(VENV_PYTHON), "-X", "importtime", "-c", "import dataplatform.platform, dataplatform.settings"]
    proc, sample = measure(lambda: subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True))
    if proc.returncode != 0:
        raise RuntimeError(f"importing the program failed:\n{proc.stderr[-2000:]}")
    packages: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and "." not in match[3]:
            name = match[3]
            packages[name] = max(packages.get(name, 0.0), int(match[1]) / 1e6)
    top = sorted(packages.items(), key=lambda kv: -kv[1])
    return sample, [(name, seconds) for name, seconds in top if seconds >= 0.03][:8]


def pieces(env: dict[str, str], runs: int) -> list[Figure]:
    figures = []
    pulumi = shutil.which("pulumi", path=env["PATH"])
    assert pulumi is not None
    version = Figure("pulumi version (CLI start)")
    for _ in range(runs):
        _, sample = measure(lambda: subprocess.run([pulumi, "version"], env=env, capture_output=True))
        version.samples.append(sample)
    figures.append(version)
    for name in PLUGINS:
        path = shutil.which(name, path=env["PATH"])
        figure = Figure(f"{name} handshake")
        if path is None:
            figure.note = "not on PATH"
        else:
            figure.samples = [handshake(path, env) for _ in range(runs)]
        figures.append(figure)
    imports = Figure("program imports (python -c import)")
    top: list[tuple[str, float]] = []
    for _ in range(runs):
        sample, top = import_profile(env)
        imports.samples.append(sample)
    imports.note = "; ".join(f"{name} {seconds:.2f}" for name, seconds in top)
    figures.append(imports)
    return figures


# -- stacks ---------------------------------------------------------------

Runner = Callable[..., tuple[int, list[str]]]


def summary(lines: list[str]) -> dict[str, int]:
    """The ``Resources:`` block of a preview or update: change kind -> count."""
    counts: dict[str, int] = {}
    inside = False
    for line in lines:
        if line.strip() == "Resources:":
            inside = True
            continue
        if inside:
            match = re.match(r"\s+[-+~]*\s*(\d+) (.+)$", line)
            if not match:
                if line.strip():
                    break
                continue
            counts[match[2].strip()] = int(match[1])
    return counts


def pulumi(run: Runner, *args: str, command: list[str] | None = None) -> tuple[list[str], Sample]:
    (code, lines), sample = measure(lambda: run(*args, command=command))
    if code != 0:
        shown = " ".join(command) if command else "pulumi " + " ".join(args)
        raise RuntimeError(f"{shown} failed ({code}):\n" + "\n".join(lines[-40:]))
    return lines, sample


def silences(lines: list[str], top: int = 8) -> list[str]:
    """The longest gaps between the engine's verbose log lines, each with the
    lines on either side: what the engine was waiting for."""
    events: list[tuple[datetime.datetime, str]] = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
            stamp = datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        except (ValueError, KeyError):
            continue
        events.append((stamp, str(record.get("msg", ""))))
    if len(events) < 2:
        return ["(no verbose log lines)"]
    gaps = [((b[0] - a[0]).total_seconds(), a[1], b[1]) for a, b in itertools.pairwise(events)]
    total = (events[-1][0] - events[0][0]).total_seconds()
    out = [f"{total:.2f} s from the first log line to the last; longest silences:"]
    for gap, before, after in sorted(gaps, reverse=True)[:top]:
        out.append(f"  {gap:5.2f} s  after: {before[:90]}")
        out.append(f"           until: {after[:90]}")
    return out


def cpu_breakdown(title: str, run: Runner, *args: str) -> list[str]:
    """One more run of the command, with the CPU of each program it started."""
    with ProcessSampler() as sampler:
        code, _ = run(*args)
    if code != 0:
        return [f"{title}: (the sampled run failed with {code})"]
    programs = sampler.by_program()
    total = sum(programs.values())
    shown = [f"{label} {cpu:.2f}" for label, cpu in programs.items() if cpu >= 0.05]
    return [f"{title}, CPU by program ({total:.2f} s in all): " + "; ".join(shown)]


def timeline(run: Runner, *args: str) -> list[str]:
    code, lines = run(*args, "--logtostderr", "-v=5")
    if code != 0:
        return [f"(verbose run failed with {code})"]
    return silences(lines)


def bench_prod(runs: int, with_timeline: bool) -> tuple[list[Figure], list[str]]:
    render_dir = Path(tempfile.mkdtemp(prefix="dataplatform-bench-render-"))
    figure = Figure("prod: pulumi preview (render)")
    notes: list[str] = []
    try:
        with ephemeral_stack(f"bench-prod-{os.getpid()}", render_config(render_dir, False)) as run:
            lines, figure.cold = pulumi(run, "preview")
            for _ in range(runs):
                lines, sample = pulumi(run, "preview")
                figure.samples.append(sample)
            figure.note = ", ".join(f"{n} {k}" for k, n in summary(lines).items())
            notes = cpu_breakdown("prod preview", run, "preview")
            if with_timeline:
                notes += ["prod preview, verbose:", *timeline(run, "preview")]
    finally:
        shutil.rmtree(render_dir, ignore_errors=True)
    return [figure], notes


def docker_engine() -> Any | None:
    try:
        import docker

        engine = docker.from_env(timeout=30)
        engine.ping()
        return engine
    except Exception:
        return None


class LocalImages:
    """An engine's images as ``machine_overrides`` looks them up, with pulls
    refused: the benchmark deploys what is on this machine (stand-ins for
    official images that are not here), as ``compose/compare.sh`` does, and
    sends nothing to a registry while it measures."""

    def __init__(self, engine: Any) -> None:
        self.images = self
        self._images = engine.images

    def get(self, reference: str) -> Any:
        return self._images.get(reference)

    def pull(self, reference: str, *args: Any, **kwargs: Any) -> Any:
        import docker

        raise docker.errors.APIError(f"{reference}: the benchmark pulls nothing")


def dev_config(engine: Any) -> dict[str, Any]:
    from tools.e2e.machine import machine_overrides

    overrides, _ = machine_overrides(LocalImages(engine))
    overrides["purgeOnDestroy"] = True
    config = merge_config(stack_config("dev"), overrides)
    return {f"{PROJECT}:{key}": value for key, value in config.items()}


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """Each running process's pid and the fields of its ``/proc/PID/stat``
    after the command name (state first, then the parent's pid, ...)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        yield int(entry.name), text[text.rindex(")") + 2 :].split()


def settle_children(timeout: float = 300.0) -> None:
    """Until no child process of this one runs (zombies aside), or
    ``timeout``. A run stopped by a signal leaves the ``pulumi`` command it
    was reading still at work (finishing, or cancelling after Ctrl-C), and
    holding the stack's lock."""
    me = str(os.getpid())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = False
        for _, fields in proc_stats():
            state, ppid = fields[:2]
            if ppid == me and state != "Z":
                running = True
                break
        if not running:
            return
        time.sleep(0.5)


@contextlib.contextmanager
def deployed(run: Runner) -> Iterator[Sample]:
    """``pulumi up`` of the stack, destroyed afterwards whatever happens."""
    try:
        _, sample = pulumi(run, "up", "--yes", "--skip-preview")
        yield sample
    finally:
        # After an interrupt, the destroy would find the stack locked.
        settle_children()
        code, lines = run("destroy", "--yes", "--skip-preview")
        if code != 0:
            log("destroy failed:\n" + "\n".join(lines[-20:]))


def bench_dev(runs: int, with_timeline: bool) -> tuple[list[Figure], list[str]]:
    engine = docker_engine()
    if engine is None:
        return [Figure(MAKE_UP, note="skipped: no Docker engine answers")], []
    make_up = Figure(MAKE_UP)
    up = Figure("dev: pulumi up, no changes")
    skip = Figure("dev: pulumi up --skip-preview, no changes")
    preview = Figure("dev: pulumi preview, no changes")
    deploy = Figure("dev: pulumi up, first (deploy)")
    notes: list[str] = []
    stack = f"bench-dev-{os.getpid()}"
    with ephemeral_stack(stack, dev_config(engine)) as run, deployed(run) as first:
        deploy.cold = first
        # `make up` is what a user types, bootstrap's checks and `pulumi up
        # --refresh` included, on this stack and backend; the others are
        # pulumi commands.
        commands: list[tuple[Figure, list[str], list[str] | None]] = [
            (make_up, [], ["make", "--no-print-directory", "up", f"STACK={stack}"]),
            (up, ["up", "--yes"], None),
            (skip, ["up", "--yes", "--skip-preview"], None),
            (preview, ["preview"], None),
        ]
        for figure, args, command in commands:
            for _ in range(runs):
                lines, sample = pulumi(run, *args, command=command)
                counts = summary(lines)
                changed = {k: n for k, n in counts.items() if k != "unchanged"}
                if changed:
                    raise RuntimeError(f"{' '.join(command or args)} of the deployed stack changed {changed}")
                figure.samples.append(sample)
                figure.note = f"{counts.get('unchanged', 0)} unchanged"
        notes = cpu_breakdown("dev no-op up", run, "up", "--yes")
        if with_timeline:
            notes += ["dev no-op up, verbose:", *timeline(run, "up", "--yes")]
    return [deploy, make_up, up, skip, preview], notes


# -- main -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    deliver_sigint()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.engine.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="warm runs of each command (default 3)")
    parser.add_argument("--no-dev-up", action="store_true", help="skip deploying the dev stack")
    parser.add_argument("--timeline", action="store_true", help="print the engine's longest waits")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    modes.add_smoke_flag(parser, "engine")
    args = modes.parse(parser, "engine", argv)
    # A stopped run (make bench-smoke's time limit, kill) still destroys its
    # ephemeral stacks and their containers on the way out.
    exit_on_sigterm()

    env = toolchain_env()
    pulumi_cli = shutil.which("pulumi", path=env.get("PATH"))
    if pulumi_cli is None:
        print("no pulumi CLI: run scripts/bootstrap.sh (or set DATAPLATFORM_CACHE)", file=sys.stderr)
        return 2
    version = subprocess.run([pulumi_cli, "version"], env=env, capture_output=True, text=True).stdout.strip()
    header = f"pulumi {version} at {pulumi_cli}; {os.cpu_count()} cores"

    figures: list[Figure] = []
    notes: list[str] = []
    log("pieces: CLI start, plugin handshakes, program imports")
    figures += pieces(env, args.runs)
    log("prod: pulumi preview in render mode")
    prod, prod_notes = bench_prod(args.runs, args.timeline)
    figures += prod
    notes += prod_notes
    if not args.no_dev_up:
        log("dev: deploy, no-op up and preview, destroy")
        dev, dev_notes = bench_dev(args.runs, args.timeline)
        figures += dev
        notes += dev_notes

    print(f"\nengine benchmark: {header}")
    print(f"{'':<38} {'cold (first run)':<20}  warm: best of {args.runs} and median")
    for figure in figures:
        print(figure.line())
    for line in notes:
        print(line)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "pulumi": version,
                    "runs": args.runs,
                    "figures": [figure.record() for figure in figures],
                    "notes": notes,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
