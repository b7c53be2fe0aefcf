"""The shape checks of ``make bench-smoke`` pass real reports and fail broken ones.

The reports in ``benchmarks/smoke_samples/`` are what each benchmark's
short pass printed (and wrote with ``--json``) in a real run of
``make bench-smoke``. Each broken variant below changes one thing a broken
benchmark would: a row missing, a figure zero or not a number, a key gone,
a failure reported; its check must say so. No Docker, no benchmark run:
this file only reads text.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.shapes import CHECKS, Report
from benchmarks.smoke import BENCHES, load_report

SAMPLES = Path(__file__).resolve().parents[1] / "benchmarks" / "smoke_samples"


def sample(name: str) -> Report:
    report = load_report(SAMPLES, name)
    assert report.stdout, f"no recorded report for {name}"
    return report


def with_stdout(report: Report, old: str, new: str, count: int = 1) -> Report:
    assert old in report.stdout, f"{old!r} is not in the recorded report"
    return Report(report.stdout.replace(old, new, count), report.stderr, report.data)


def with_line_dropped(report: Report, pattern: str) -> Report:
    lines = report.stdout.splitlines(keepends=True)
    kept = [line for line in lines if not re.search(pattern, line)]
    assert len(kept) < len(lines), f"no line matches {pattern!r}"
    return Report("".join(kept), report.stderr, report.data)


def with_data(report: Report, change: Callable[[Any], None]) -> Report:
    data = copy.deepcopy(report.data)
    change(data)
    return Report(report.stdout, report.stderr, data)


def first_number(pattern: str, replacement: str) -> Callable[[Report], Report]:
    """The first match of ``pattern`` (a regex with one group, the figure)
    in the report, with the figure replaced."""

    def change(report: Report) -> Report:
        match = re.search(pattern, report.stdout, re.M)
        assert match, f"no match for {pattern!r}"
        start, end = match.span(1)
        return Report(report.stdout[:start] + replacement + report.stdout[end:], report.stderr, report.data)

    return change


def set_key(path: list[Any], value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


def drop_key(path: list[Any]) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]

    return change


def engine_figure(name: str, key: str, value: Any, sample: int | None = None) -> Callable[[Report], Report]:
    """The engine's JSON figure ``name`` with ``key`` (of one of its samples) set."""

    def change(data: Any) -> None:
        figure = next(f for f in data["figures"] if f["name"] == name)
        (figure if sample is None else figure["samples"][sample])[key] = value

    return lambda report: with_data(report, change)


def features_result(change: Callable[[dict[str, Any]], None]) -> Callable[[Report], Report]:
    """The features bench prints its results as JSON lines: change the first."""

    def apply(report: Report) -> Report:
        lines = report.stdout.splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.startswith("{"))
        result = json.loads(lines[at])
        change(result)
        lines[at] = json.dumps(result) + "\n"
        return Report("".join(lines), report.stderr, report.data)

    return apply


BROKEN: dict[str, dict[str, Callable[[Report], Report]]] = {
    "gateway": {
        "a load point missing from the latency table": lambda r: with_line_dropped(r, r"^\| 8 \| .*%"),
        "a proxy's CPU per request zero": first_number(r"^\| 1 \| (\d+) \| \d+ \| ", "0"),
        "a latency not a number": first_number(r"^\| 1 \| ([\d.]+) / ", "nan"),
        "failed requests reported": lambda r: with_data(r, set_key(["rows", 0, "errors"], 3)),
        "requests per second zero in the figures": lambda r: with_data(r, set_key(["rows", 1, "rps"], 0.0)),
        "memory figures gone": lambda r: with_data(r, drop_key(["memory_kib"])),
        "no JSON written": lambda r: Report(r.stdout, r.stderr, None),
    },
    "inference": {
        "a batch missing from the rows/s table": lambda r: with_line_dropped(
            r, r"^\| entity \| 32 \| [\d,]+ \| [\d,]+ \| [\d.]+% \| \| \|"
        ),
        "the latency table gone": lambda r: with_line_dropped(r, r"^\| (inline|entity) \| service \|"),
        "service rows/s zero": first_number(r"^\| inline \| 1 \| ([\d,]+) \|", "0"),
        "a ratio not a number": first_number(r"^\| entity \| 1 \| [\d,]+ \| [\d,]+ \| ([\d.]+)%", "inf"),
        "an in-process figure gone": lambda r: with_data(r, drop_key(["summary", 0, "in_process"])),
        "a latency run missing": lambda r: with_data(r, set_key(["latency_batch1", "entity"], [])),
        "the binary body's tables gone": lambda r: with_line_dropped(r, r"^\| binary \|"),
        "the binary body's figures gone": lambda r: with_data(r, drop_key(["binary"])),
    },
    "engine": {
        "a figure's line missing": lambda r: with_line_dropped(r, r"^dev: pulumi up, no changes "),
        "the dev stack skipped": engine_figure(
            "dev: pulumi up, no changes", "note", "skipped: no Docker engine answers"
        ),
        "a no-op up that found nothing deployed": engine_figure(
            "dev: pulumi up, no changes", "note", "0 unchanged"
        ),
        "a run's CPU time zero": engine_figure("prod: pulumi preview (render)", "cpu", 0.0, sample=0),
        "a warm run missing": engine_figure("dev: pulumi preview, no changes", "samples", []),
        "the CPU breakdown gone": lambda r: with_line_dropped(r, r"^dev no-op up, CPU by program"),
    },
    "compose": {
        "a one-shot that failed": first_number(r"^ {4}minio-init .*\(status (\d+)\)$", "1"),
        "a service never healthy": first_number(
            r"^ {4}gateway .*started\s+[\d.]+s\s+(healthy\s+[\d.]+s)$", "unhealthy"
        ),
        "a service missing": lambda r: with_line_dropped(r, r"^ {4}inference "),
        "no median": lambda r: with_line_dropped(r, r"^median: "),
        "a run's time zero": first_number(r"^docker compose up -d --wait, 1 runs: (\S+) ", "0.0"),
    },
    "features": {
        "throughput zero": features_result(lambda d: d.update(events_per_second=0)),
        "a size missing": features_result(lambda d: d.update(events=999)),
        "the Redis copy not made": features_result(lambda d: d.update(redis=False)),
        "memory not sampled": features_result(lambda d: d.update(driver_rss_peak_mib=0.0)),
        "the table's row gone": lambda r: with_line_dropped(r, r"^\s+4,000\s+delta\s+yes\s"),
        "the peer's run missing": features_result(lambda d: d.update(format="parquet")),
        "no ratio against the peer": lambda r: with_line_dropped(r, r"^delta / parquet at "),
    },
}


def test_every_benchmark_has_a_recorded_report_and_broken_variants() -> None:
    names = {b.name for b in BENCHES}
    assert set(CHECKS) == names
    assert set(BROKEN) == names


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_recorded_report_passes(name: str) -> None:
    assert CHECKS[name](sample(name)) == []


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_an_empty_report_fails(name: str) -> None:
    assert CHECKS[name](Report("", "", None))


@pytest.mark.parametrize(
    ("name", "broken"), [(name, what) for name, variants in sorted(BROKEN.items()) for what in variants]
)
def test_a_broken_report_fails(name: str, broken: str) -> None:
    report = BROKEN[name][broken](sample(name))
    assert CHECKS[name](report), f"{name}: {broken} passed the check"
