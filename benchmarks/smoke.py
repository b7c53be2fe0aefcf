"""Every benchmark's short pass, and the shape of what it reports.

    python -m benchmarks.smoke [--only NAME ...] [--out DIR] [--recheck]

What ``make bench-smoke`` runs after installing the tools and building the
images the benchmarks use. Each benchmark runs with ``--smoke``
(``benchmarks/modes.py``: the same setup, measurement and report code as
its full run, one round of the smallest load points on tiny data), with its
own interpreter, as its make target runs it; its standard output and error
and its ``--json`` figures land in DIR (default
``$DATAPLATFORM_CACHE/bench-smoke``) and its report's shape is checked by
``benchmarks/shapes.py``. A benchmark fails when it exits non-zero, runs
past its time limit or reports something of the wrong shape; the others
still run, and the exit status is 1 if any failed. ``--recheck`` checks the
reports already in DIR without running anything.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.shapes import CHECKS, Report
from tools.signals import deliver_sigint

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_PYTHON = ROOT / ".venv" / "bin" / "python"
# The serving and jobs benchmarks import boto3, moto, PySpark and psutil,
# which only the jobs' virtualenv has (their make targets use it too).
JOBS_PYTHON = ROOT / "jobs" / ".venv" / "bin" / "python"
# How long a benchmark may take before it is stopped: a few times what its
# short pass takes on two busy cores, so a hang fails instead of eating CI.
GRACE_SECONDS = 90


@dataclass(frozen=True)
class Bench:
    name: str
    argv: Callable[[Path], list[str]]
    timeout: float
    what: str


def _python_module(python: Path, module: str, *extra: str) -> Callable[[Path], list[str]]:
    def argv(json_path: Path) -> list[str]:
        return [str(python), "-m", module, "--smoke", *extra, "--json", str(json_path)]

    return argv


BENCHES = (
    Bench(
        "features",
        lambda _json: [str(JOBS_PYTHON), "-m", "benchmarks.jobs.features_bench", "--smoke", "--redis"],
        300,
        "features job on local[2], Delta and plain Parquet: 1,000 events untimed, then 4,000 with Redis",
    ),
    Bench(
        "gateway",
        _python_module(JOBS_PYTHON, "benchmarks.gateway.bench"),
        240,
        "direct, nginx and gateway at 1 and 8 connections, 1 s each",
    ),
    Bench(
        "inference",
        _python_module(JOBS_PYTHON, "benchmarks.inference.bench"),
        300,
        "service and in-process, inline and entity rows, batch 1 and 32, 1 s each",
    ),
    Bench(
        "compose",
        lambda _json: ["bash", str(ROOT / "benchmarks" / "compose" / "compare.sh"), "--smoke"],
        360,
        "one docker compose up --wait of the generated project, then down -v",
    ),
    Bench(
        "engine",
        _python_module(PROGRAM_PYTHON, "benchmarks.engine.bench"),
        600,
        "CLI and plugin starts, prod preview, ephemeral dev stack deployed, no-op up, destroyed",
    ),
)


@dataclass
class Outcome:
    name: str
    seconds: float
    problems: list[str]


def paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    return out / f"{name}.out", out / f"{name}.err", out / f"{name}.json"


def load_report(out: Path, name: str) -> Report:
    stdout, stderr, data_path = paths(out, name)
    data = None
    if data_path.exists() and data_path.stat().st_size:
        try:
            data = json.loads(data_path.read_text())
        except ValueError:
            data = None
    return Report(
        stdout.read_text() if stdout.exists() else "",
        stderr.read_text() if stderr.exists() else "",
        data,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first: every benchmark removes what it started on SIGTERM
    (containers, stacks, servers); SIGKILL only if it does not finish."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(bench: Bench, out: Path) -> Outcome:
    stdout, stderr, data_path = paths(out, bench.name)
    for path in (stdout, stderr, data_path):
        path.unlink(missing_ok=True)
    argv = bench.argv(data_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"==> {bench.name}: {bench.what}", flush=True)
    print(f"    {' '.join(argv)}", flush=True)
    started = time.monotonic()
    problems: list[str] = []
    with stdout.open("wb") as out_file, stderr.open("wb") as err_file:
        try:
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out_file, stderr=err_file)
        except OSError as exc:
            return Outcome(
                bench.name, 0.0, [f"cannot start ({exc}): run `make bench-smoke`, which installs it"]
            )
        try:
            code = process.wait(timeout=bench.timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            problems.append(f"still running after {bench.timeout:.0f} s: stopped")
            code = process.returncode
        except KeyboardInterrupt:
            # Ctrl-C reached the benchmark too (same process group): let it
            # finish removing what it started before going.
            try:
                process.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    seconds = time.monotonic() - started
    if code != 0 and not problems:
        problems.append(f"exited with status {code}")
    if not problems:
        problems = check(bench.name, out)
    if problems:
        tail = stderr.read_text(errors="replace").splitlines()[-40:]
        print("    last lines of its standard error:", *(f"    | {line}" for line in tail), sep="\n")
    return Outcome(bench.name, seconds, problems)


def check(name: str, out: Path) -> list[str]:
    report = load_report(out, name)
    if not report.stdout.strip():
        return ["printed no report"]
    return CHECKS[name](report)


def main(argv: list[str] | None = None) -> int:
    deliver_sigint()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.smoke", description=__doc__.split("\n\n")[0])
    names = [b.name for b in BENCHES]
    parser.add_argument("--only", nargs="+", choices=names, help="these benchmarks only")
    cache = Path(os.environ.get("DATAPLATFORM_CACHE") or Path.home() / ".cache" / "dataplatform")
    parser.add_argument("--out", type=Path, default=cache / "bench-smoke", help="where reports are kept")
    parser.add_argument("--recheck", action="store_true", help="check the reports in --out, run nothing")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    started = time.monotonic()
    outcomes = []
    for bench in chosen:
        if args.recheck:
            outcome = Outcome(bench.name, 0.0, check(bench.name, args.out))
        else:
            outcome = run(bench, args.out)
        outcomes.append(outcome)
        verdict = "ok" if not outcome.problems else "FAILED"
        print(f"    {bench.name}: {verdict} ({outcome.seconds:.1f} s)", flush=True)
        for problem in outcome.problems:
            print(f"    - {problem}", flush=True)
    elapsed = time.monotonic() - started

    failed = [o for o in outcomes if o.problems]
    print()
    print(f"{'benchmark':<10} {'seconds':>8}  result")
    for o in outcomes:
        print(f"{o.name:<10} {o.seconds:>8.1f}  {'ok' if not o.problems else f'FAILED: {o.problems[0]}'}")
    print(f"{'all':<10} {elapsed:>8.1f}  reports in {args.out}")
    print(f"bench-smoke: {len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
