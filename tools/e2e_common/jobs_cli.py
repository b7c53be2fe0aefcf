"""The jobs CLI as both runs drive it: ``python -m jobs submit`` on the run's stack, and a CSV to count."""

from __future__ import annotations

import collections
import csv
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tools.e2e_common.report import check
from tools.e2e_common.stack import EphemeralStack
from tools.repo import ROOT

MODEL = "churn"


def jobs_cli_command(*args: str) -> list[str]:
    """``python -m jobs`` as a user runs it, from the jobs' environment."""
    return [str(ROOT / "jobs" / ".venv" / "bin" / "python"), "-m", "jobs", *args]


def jobs_submit_command(stack: str, job: str, *args: str) -> list[str]:
    """``python -m jobs submit`` against ``stack``, with the stack's own sizes."""
    return jobs_cli_command("submit", "--stack", stack, "--project-dir", str(ROOT), job, *args)


def submit(stack: EphemeralStack, job: str, *args: str) -> tuple[int, float]:
    """Runs ``job`` with the stack's own sizes (no size flags); its output is
    kept in ``stack.last_output`` and the log file. Returns the exit status
    and the seconds it took."""
    stack.log(f"submitting {job}")
    start = time.monotonic()
    completed = subprocess.run(
        jobs_submit_command(stack.name, job, *args), cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - start
    stack.last_output = completed.stdout + completed.stderr
    stack.out(stack.last_output)
    return completed.returncode, seconds


def check_succeeded(stack: EphemeralStack, job: str, returncode: int) -> None:
    check(returncode == 0, f"job {job} failed ({returncode}):\n{stack.last_output[-3000:]}")


def write_quoted_csv(path: Path) -> dict[str, str]:
    """The group-by-count job's kind of input: a header CSV whose values hold commas; returns
    the counts per ``column1`` value that event_counts must print."""
    rows = [[f"k{i % 7}", f"value, {i}", str(i)] for i in range(3000)]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["column1", "column2", "column3"])
        writer.writerows(rows)
    return {k: str(v) for k, v in collections.Counter(r[0] for r in rows).items()}


def printed_counts(output: str) -> dict[str, str]:
    """The ``value<TAB>count`` lines event_counts printed for that CSV."""
    return dict(line.split("\t") for line in output.splitlines() if re.fullmatch(r"k\d\t\d+", line))


def csv_groups_counted(stack: EphemeralStack, submit: Callable[..., object]) -> None:
    """The CSV group-by-count job on a local CSV, submitted with the tier's own ``submit``:
    event_counts must print every group's count exactly."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "data.csv"
        expected = write_quoted_csv(path)
        submit("event_counts", str(path), "--column", "column1")
    printed = printed_counts(stack.last_output)
    check(printed == expected, f"event_counts printed {printed}, expected {expected}")
