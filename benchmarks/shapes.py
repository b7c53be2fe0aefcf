"""The shape of each benchmark's report, checked after its short pass.

``make bench-smoke`` runs every benchmark with ``--smoke`` and hands what it
printed (and the ``--json`` file, where the benchmark writes one) to the
checker of that benchmark here. A checker returns the problems it found,
an empty list when the report has its expected shape: every table with its
header, one row for each load point the short mode asked for
(``benchmarks/modes.py``), and every figure a finite number, greater than
zero where a zero would mean that nothing was measured (requests per
second, latencies, CPU and memory, ratios). Values are not compared with
anything: a short pass on a shared machine measures noise.

Standard library only, so that the project's test suite can check the
checkers on recorded reports (``tests/test_bench_shapes.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.modes import SMOKE


@dataclass(frozen=True)
class Report:
    """What one benchmark run left: its standard output and error, and the
    parsed ``--json`` file (None if it writes none or wrote nothing)."""

    stdout: str
    stderr: str = ""
    data: Any = None


@dataclass
class Problems:
    """Problems found in one report, each prefixed with where it was."""

    found: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.found.append(f"{where}: {message}")

    def need(self, condition: bool, where: str, message: str) -> bool:
        if not condition:
            self.add(where, message)
        return condition


# -- figures ----------------------------------------------------------------


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_positive(value: object) -> bool:
    return is_number(value) and value > 0  # type: ignore[operator]


def cell_numbers(cell: str) -> list[float] | None:
    """The numbers of a table cell: ``608``, ``1,762``, ``+0.51 / -1.44``,
    ``74.8%``, ``133 / 162 / 175``. None if any part is not a finite number
    (``nan``, ``inf``, a word), so a broken figure cannot pass as text."""
    parts = [p.strip() for p in cell.replace(",", "").split("/")]
    values = []
    for part in parts:
        part = part.removesuffix("%").strip()
        if not re.fullmatch(r"[-+]?\d+(\.\d+)?", part):
            return None
        values.append(float(part))
    return values


def check_figures(
    problems: Problems, where: str, record: Any, positive: Iterable[str], numeric: Iterable[str] = ()
) -> None:
    """``record[key]`` is a number > 0 for each key of ``positive`` and a
    finite number for each of ``numeric``."""
    if not problems.need(isinstance(record, dict), where, f"expected an object, got {record!r}"):
        return
    for key in positive:
        value = record.get(key)
        problems.need(is_positive(value), where, f"{key} should be a number > 0, got {value!r}")
    for key in numeric:
        value = record.get(key)
        problems.need(is_number(value), where, f"{key} should be a finite number, got {value!r}")


def sized_list(problems: Problems, where: str, value: Any, length: int, what: str) -> list[Any]:
    """``value`` if it is a list of ``length`` items, else [] and a problem."""
    if isinstance(value, list) and len(value) == length:
        return value
    problems.add(where, f"{what} {value!r}, expected {length} item(s)")
    return []


# -- markdown tables ----------------------------------------------------------


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().removeprefix("|").removesuffix("|").split("|")]


def markdown_tables(text: str) -> list[Table]:
    """Every pipe table of ``text``: a header line, a ``|---|`` line, rows."""
    lines = text.splitlines()
    tables = []
    i = 0
    while i < len(lines) - 1:
        line, below = lines[i].strip(), lines[i + 1].strip()
        if line.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", below):
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append(Table(_cells(line), rows))
        else:
            i += 1
    return tables


# What a column must hold: "key" (compared with the expected row keys),
# "+" (every number > 0), "n" (finite numbers, any sign), "" (left empty).
Column = tuple[str, int]


def check_table(
    problems: Problems,
    where: str,
    tables: Sequence[Table],
    header: Sequence[str],
    keys: Sequence[tuple[str, ...]],
    columns: Callable[[tuple[str, ...]], Sequence[Column]],
) -> None:
    """The table whose header is ``header`` is there once, with one row per
    key of ``keys`` (its leading cells), in that order, and each row's cells
    hold what ``columns(key)`` says: per column a kind and how many numbers."""
    found = [t for t in tables if t.header == list(header)]
    if not problems.need(
        len(found) == 1, where, f"expected one table headed {list(header)}, found {len(found)}"
    ):
        return
    table = found[0]
    got = [tuple(row[: len(keys[0])]) for row in table.rows] if keys else []
    if not problems.need(got == list(keys), where, f"rows {got}, expected {list(keys)}"):
        return
    for key, row in zip(keys, table.rows, strict=True):
        spec = list(columns(key))
        label = f"{where}, row {' '.join(key)}"
        if not problems.need(len(row) == len(spec), label, f"{len(row)} cells, expected {len(spec)}"):
            continue
        for name, cell, (kind, count) in zip(header, row, spec, strict=True):
            if kind == "key":
                continue
            if kind == "":
                problems.need(cell == "", label, f"{name!r} should be empty, got {cell!r}")
                continue
            values = cell_numbers(cell)
            if values is None or len(values) != count:
                problems.add(label, f"{name!r} should hold {count} number(s), got {cell!r}")
            elif kind == "+" and not all(v > 0 for v in values):
                problems.add(label, f"{name!r} should be > 0, got {cell!r}")


# -- the benchmarks ---------------------------------------------------------


GATEWAY_VARIANTS = ("direct", "nginx", "gateway")
GATEWAY_HEADERS = (
    [
        "connections",
        "direct p50 / p99 ms",
        "direct req/s",
        "nginx added p50 / p99 ms",
        "nginx kept",
        "gateway added p50 / p99 ms",
        "gateway kept",
    ],
    ["connections", "nginx µs", "gateway µs", "Redis µs direct / nginx / gateway"],
    ["", "at rest PSS / RSS MiB", "under load (peak) PSS / RSS MiB"],
)


def check_gateway(report: Report, smoke: dict[str, Any] | None = None) -> list[str]:
    smoke = smoke or SMOKE["gateway"]
    problems = Problems()
    concurrency = sorted(smoke["concurrency"])
    keys = [(str(c),) for c in concurrency]
    tables = markdown_tables(report.stdout)
    added_kept = [("+", 2), ("+", 1), ("n", 2), ("+", 1), ("n", 2), ("+", 1)]
    check_table(
        problems, "latency table", tables, GATEWAY_HEADERS[0], keys, lambda k: [("key", 1), *added_kept]
    )
    check_table(
        problems,
        "CPU table",
        tables,
        GATEWAY_HEADERS[1],
        keys,
        lambda k: [("key", 1), ("+", 1), ("+", 1), ("+", 3)],
    )
    check_table(
        problems,
        "memory table",
        tables,
        GATEWAY_HEADERS[2],
        [("nginx",), ("gateway",)],
        lambda k: [("key", 1), ("+", 2), ("+", 2)],
    )
    problems.need(
        "Requests answered with errors" not in report.stdout, "report", "requests answered with errors"
    )
    problems.need(bool(re.search(r"^pinning: ", report.stdout, re.M)), "report", "no closing 'pinning:' line")

    data = report.data
    if not problems.need(isinstance(data, dict), "json", "no JSON figures"):
        return problems.found
    rows = data.get("rows")
    if problems.need(isinstance(rows, list), "json", "no rows"):
        seen = sorted((r.get("connections"), r.get("variant")) for r in rows if isinstance(r, dict))
        expected = sorted((c, v) for c in concurrency for v in GATEWAY_VARIANTS)
        problems.need(seen == expected, "json rows", f"{seen}, expected {expected}")
        for row in rows:
            if not isinstance(row, dict):
                problems.add("json rows", f"not an object: {row!r}")
                continue
            where = f"json row {row.get('connections')} {row.get('variant')}"
            # "direct" has no proxy: its proxy CPU is 0 by construction.
            proxy_cpu = ["proxy_cpu_us"] if row.get("variant") != "direct" else []
            check_figures(
                problems,
                where,
                row,
                ["p50_ms", "p99_ms", "rps", "redis_cpu_us", *proxy_cpu],
                ["proxy_cpu_us"],
            )
            problems.need(row.get("errors") == 0, where, f"{row.get('errors')!r} failed requests")
            for run in sized_list(problems, where, row.get("runs"), smoke["rounds"], "runs"):
                check_figures(problems, where + " run", run, ["p50_ms", "p99_ms", "rps"])
    memory = data.get("memory_kib")
    for proxy in ("nginx", "gateway"):
        entry = memory.get(proxy) if isinstance(memory, dict) else None
        for when in ("rest", "peak"):
            pair = entry.get(when) if isinstance(entry, dict) else None
            problems.need(
                isinstance(pair, list) and len(pair) == 2 and all(is_positive(v) for v in pair),
                f"json memory {proxy} {when}",
                f"expected [PSS, RSS] > 0, got {pair!r}",
            )
    return problems.found


INFERENCE_SOURCES = ("inline", "entity")
# Measured beside them and reported in tables of its own.
INFERENCE_BINARY = "binary"
INFERENCE_HEADERS = (
    [
        "features",
        "batch",
        "service rows/s",
        "in-process rows/s",
        "service / in-process",
        "in-process from a ready matrix",
        "service / that",
    ],
    ["features", "batch", "service rows/CPU-s", "in-process rows/CPU-s", "service / in-process"],
    ["features", "batch 1, one connection", "p50 ms", "p99 ms", "in-process p50 / p99 ms"],
    [
        "binary body",
        "batch",
        "service rows/s",
        "service rows/CPU-s",
        "in-process rows/s from the same bytes",
        "service / that",
        "service / ready matrix",
        "service / JSON service",
        "service / in-process from dicts",
    ],
    ["binary body", "batch 1, one connection", "p50 ms", "p99 ms", "in-process p50 / p99 ms"],
)
BINARY_FIGURES = (
    "service",
    "service_per_cpu_s",
    "in_process",
    "in_process_array",
    "json_service",
    "in_process_dicts",
)


def check_inference(report: Report, smoke: dict[str, Any] | None = None) -> list[str]:
    smoke = smoke or SMOKE["inference"]
    problems = Problems()
    batches = sorted(smoke["batches"])
    keys = [(s, str(b)) for s in INFERENCE_SOURCES for b in batches]
    tables = markdown_tables(report.stdout)

    def throughput(key: tuple[str, ...]) -> list[Column]:
        # Only inline rows have a ready-matrix upper bound.
        bound: list[Column] = [("+", 1), ("+", 1)] if key[0] == "inline" else [("", 0), ("", 0)]
        return [("key", 1), ("key", 1), ("+", 1), ("+", 1), ("+", 1), *bound]

    check_table(problems, "rows/s table", tables, INFERENCE_HEADERS[0], keys, throughput)
    check_table(
        problems,
        "rows/CPU-s table",
        tables,
        INFERENCE_HEADERS[1],
        keys,
        lambda k: [("key", 1)] * 2 + [("+", 1)] * 3,
    )
    check_table(
        problems,
        "latency table",
        tables,
        INFERENCE_HEADERS[2],
        [(s, "service") for s in INFERENCE_SOURCES],
        lambda k: [("key", 1), ("key", 1), ("+", 1), ("+", 1), ("+", 2)],
    )
    check_table(
        problems,
        "binary rows/s table",
        tables,
        INFERENCE_HEADERS[3],
        [(INFERENCE_BINARY, str(b)) for b in batches],
        lambda k: [("key", 1), ("key", 1)] + [("+", 1)] * 7,
    )
    check_table(
        problems,
        "binary latency table",
        tables,
        INFERENCE_HEADERS[4],
        [(INFERENCE_BINARY, "service")],
        lambda k: [("key", 1), ("key", 1), ("+", 1), ("+", 1), ("+", 2)],
    )
    problems.need(bool(re.search(r"^pinning: ", report.stdout, re.M)), "report", "no closing 'pinning:' line")

    data = report.data
    if not problems.need(isinstance(data, dict), "json", "no JSON figures"):
        return problems.found
    summary = data.get("summary")
    if problems.need(isinstance(summary, list), "json", "no summary"):
        seen = [(e.get("source"), e.get("batch")) for e in summary if isinstance(e, dict)]
        expected = [(s, b) for s in INFERENCE_SOURCES for b in batches]
        problems.need(seen == expected, "json summary", f"{seen}, expected {expected}")
        for entry in summary:
            where = (
                f"json summary {entry.get('source')} {entry.get('batch')}"
                if isinstance(entry, dict)
                else "json"
            )
            array = (
                ["in_process_array"] if isinstance(entry, dict) and entry.get("source") == "inline" else []
            )
            check_figures(problems, where, entry, ["service", "in_process", *array])
    binary = data.get("binary")
    if problems.need(isinstance(binary, list), "json", "no binary figures"):
        seen_batches = [e.get("batch") for e in binary if isinstance(e, dict)]
        problems.need(seen_batches == batches, "json binary", f"batches {seen_batches}, expected {batches}")
        for entry in binary:
            where = f"json binary {entry.get('batch')}" if isinstance(entry, dict) else "json binary"
            check_figures(problems, where, entry, BINARY_FIGURES)
    latency = data.get("latency_batch1")
    for source in (*INFERENCE_SOURCES, INFERENCE_BINARY):
        runs = latency.get(source) if isinstance(latency, dict) else None
        where = f"json latency {source}"
        for run in sized_list(problems, where, runs, smoke["rounds"], "runs"):
            check_figures(problems, where, run, ["rows_per_s", "p50_ms", "p99_ms", "rows_per_cpu_s"])
    return problems.found


ENGINE_FIGURES = (
    "pulumi version (CLI start)",
    "pulumi-language-python handshake",
    "pulumi-resource-kubernetes handshake",
    "pulumi-resource-docker handshake",
    "pulumi-resource-random handshake",
    "program imports (python -c import)",
    "prod: pulumi preview (render)",
    "dev: pulumi up, first (deploy)",
    "dev: make up, no changes",
    "dev: pulumi up, no changes",
    "dev: pulumi up --skip-preview, no changes",
    "dev: pulumi preview, no changes",
)
# Figures of whole engine runs: CPU time of a few seconds at least, so a 0
# means the accounting broke. A plugin's handshake or `pulumi version` may
# take less than one clock tick of CPU.
ENGINE_RUNS = {name for name in ENGINE_FIGURES if name.startswith(("prod:", "dev:"))}
ENGINE_COLD = {"prod: pulumi preview (render)", "dev: pulumi up, first (deploy)"}


def check_engine(report: Report, smoke: dict[str, Any] | None = None) -> list[str]:
    smoke = smoke or SMOKE["engine"]
    problems = Problems()
    out = report.stdout
    problems.need(
        bool(re.search(r"^engine benchmark: pulumi ", out, re.M)), "report", "no 'engine benchmark:' header"
    )
    for name in ENGINE_FIGURES:
        line = next((x for x in out.splitlines() if x.startswith(name + " ")), None)
        if problems.need(line is not None, "report", f"no line for {name!r}"):
            assert line is not None
            problems.need(
                bool(re.search(r"\d+\.\d\d s \(\s*\d+\.\d\d CPU\)", line)), name, f"no timing in {line!r}"
            )
            problems.need(
                "skipped" not in line and "not on PATH" not in line, name, f"not measured: {line!r}"
            )
    for title in ("prod preview", "dev no-op up"):
        problems.need(
            bool(re.search(rf"^{re.escape(title)}, CPU by program \(\d+\.\d\d s in all\): \S", out, re.M)),
            "report",
            f"no CPU breakdown of the {title}",
        )

    data = report.data
    if not problems.need(isinstance(data, dict), "json", "no JSON figures"):
        return problems.found
    problems.need(
        data.get("runs") == smoke["runs"], "json", f"runs {data.get('runs')!r}, expected {smoke['runs']}"
    )
    figures = {f.get("name"): f for f in data.get("figures") or [] if isinstance(f, dict)}
    for name in ENGINE_FIGURES:
        figure = figures.get(name)
        if not problems.need(figure is not None, "json", f"no figure {name!r}"):
            continue
        assert figure is not None
        keys = ["wall", "cpu"] if name in ENGINE_RUNS else ["wall"]
        samples = figure.get("samples")
        # The deploy runs once (its cold figure), for the no-op runs to find.
        expected_samples = 0 if name == "dev: pulumi up, first (deploy)" else smoke["runs"]
        for sample in sized_list(problems, name, samples, expected_samples, "samples"):
            check_figures(problems, name, sample, keys, ["cpu", "load"])
        if name in ENGINE_COLD:
            check_figures(problems, name + " (cold)", figure.get("cold"), keys, ["cpu", "load"])
        if name.startswith("dev:") and name in ENGINE_RUNS and "first" not in name:
            # Each no-op run must have found the deployed resources unchanged.
            match = re.fullmatch(r"(\d+) unchanged", str(figure.get("note")))
            problems.need(bool(match and int(match[1]) > 0), name, f"note {figure.get('note')!r}")
        if name.startswith("prod:"):
            problems.need(
                bool(re.search(r"\d+ ", str(figure.get("note")))),
                name,
                f"no resource counts: {figure.get('note')!r}",
            )
    return problems.found


COMPOSE_CORE = ("redis", "minio", "minio-init", "inference", "gateway", "prometheus", "spark-master")
MILESTONE = re.compile(
    r"^ {4}(?P<service>\S+)\s+started\s+(?P<started>-?[\d.]+)s\s+"
    r"(?:healthy\s+(?P<healthy>-?[\d.]+)s"
    r"|exited\s+(?P<exited>-?[\d.]+)s \(status (?P<status>\d+)\)"
    r"|(?P<other>.+))$"
)


def check_compose(report: Report, smoke: dict[str, Any] | None = None) -> list[str]:
    smoke = smoke or SMOKE["compose"]
    problems = Problems()
    out = report.stdout
    runs = smoke["runs"]
    summary = re.search(rf"^docker compose up -d --wait, {runs} runs: (.+) \(seconds\)$", out, re.M)
    if problems.need(summary is not None, "report", f"no summary line of {runs} run(s)"):
        assert summary is not None
        times = summary[1].split()
        problems.need(
            len(times) == runs and all((cell_numbers(t) or [0])[0] > 0 for t in times),
            "summary",
            f"times {times}",
        )
    median = re.search(r"^median: (\S+)s$", out, re.M)
    problems.need(
        median is not None and (cell_numbers(median[1]) or [0])[0] > 0, "report", "no median > 0 seconds"
    )
    services: dict[str, re.Match[str]] = {}
    for line in out.splitlines():
        match = MILESTONE.match(line)
        if match:
            services[match["service"]] = match
    generated = re.search(r"^wrote .*: \d+ services \(([^)]*)\)", report.stderr, re.M)
    expected = set(generated[1].split(", ")) if generated else set()
    problems.need(generated is not None, "report", "generate.py did not say which services it wrote")
    problems.need(
        set(COMPOSE_CORE) <= expected, "generated", f"services {sorted(expected)} lack some of {COMPOSE_CORE}"
    )
    problems.need(
        set(services) == expected, "milestones", f"services {sorted(services)}, generated {sorted(expected)}"
    )
    for name, match in services.items():
        started = float(match["started"])
        problems.need(started > 0, name, f"started at {started} s")
        if match["healthy"] is not None:
            problems.need(float(match["healthy"]) >= started, name, f"healthy at {match['healthy']} s")
        elif match["exited"] is not None:
            problems.need(match["status"] == "0", name, f"exited with status {match['status']}")
        elif match["other"].strip() != "running":
            # "running" is a container without a health check; anything else
            # (starting, unhealthy) is one `up --wait` should not have passed.
            problems.add(name, f"neither healthy, exited nor running: {match['other']!r}")
    return problems.found


FEATURES_HEADER = ["events", "format", "redis", "seconds", "events/s"]
FEATURES_HEADER += ["RSS", "MiB", "heap", "MiB", "live", "MiB"]
FEATURES_FORMATS = ("delta", "parquet")
FEATURES_RATIO = re.compile(r"^delta / parquet at ([\d,]+) events: (\d+\.\d+)x \(medians of (\d+) rounds\)$")


def check_features(report: Report, smoke: dict[str, Any] | None = None, redis: bool = True) -> list[str]:
    smoke = smoke or SMOKE["features"]
    problems = Problems()
    sizes = list(smoke["sizes"])
    expected = [(size, fmt) for size in sizes for fmt in FEATURES_FORMATS]
    results = []
    for line in report.stdout.splitlines():
        if line.startswith("{"):
            try:
                results.append(json.loads(line))
            except ValueError:
                problems.add("report", f"not JSON: {line!r}")
    got = [(r.get("events"), r.get("format")) for r in results if isinstance(r, dict)]
    problems.need(got == expected, "results", f"(events, format) {got}, expected {expected}")
    for result in results:
        where = "result"
        if isinstance(result, dict):
            where = f"result {result.get('events')} {result.get('format')}"
        check_figures(
            problems,
            where,
            result,
            ["entities", "seconds", "events_per_second", "driver_rss_peak_mib", "driver_heap_used_peak_mib"],
            ["driver_heap_live_peak_mib"],
        )
        if isinstance(result, dict):
            problems.need(
                result.get("redis") is redis, where, f"redis {result.get('redis')!r}, expected {redis}"
            )
            rounds = result.get("rounds")
            problems.need(rounds == smoke["rounds"], where, f"rounds {rounds!r}, expected {smoke['rounds']}")

    lines = report.stdout.splitlines()
    at = next((i for i, x in enumerate(lines) if x.split() == FEATURES_HEADER), None)
    if problems.need(at is not None, "table", f"no header {' '.join(FEATURES_HEADER)}"):
        assert at is not None
        rows = [x.split() for x in lines[at + 1 : at + 1 + len(expected)]]
        for (size, fmt), row in zip(expected, rows, strict=False):
            where = f"table row {size} {fmt}"
            if not problems.need(len(row) == 8, where, f"{row}, expected 8 cells"):
                continue
            numbers = [cell_numbers(c) for c in (row[0], *row[3:])]
            problems.need(all(n is not None for n in numbers), where, f"not numbers: {row}")
            if all(n is not None for n in numbers):
                problems.need(numbers[0] == [float(size)], where, f"events {row[0]}, expected {size:,}")
                problems.need(all(n[0] > 0 for n in numbers[1:4] if n), where, f"figures not > 0: {row}")
            problems.need(row[1] == fmt, where, f"format column {row[1]!r}, expected {fmt}")
            problems.need(row[2] == ("yes" if redis else "no"), where, f"redis column {row[2]!r}")
        problems.need(len(rows) == len(expected), "table", f"{len(rows)} rows, expected {len(expected)}")
    ratios = [m for line in lines if (m := FEATURES_RATIO.match(line))]
    problems.need(
        [int(m.group(1).replace(",", "")) for m in ratios] == sizes,
        "ratio",
        f"delta / parquet lines for {[m.group(1) for m in ratios]}, expected one per size {sizes}",
    )
    problems.need(all(float(m.group(2)) > 0 for m in ratios), "ratio", "a ratio is not > 0")
    return problems.found


CHECKS: dict[str, Callable[[Report], list[str]]] = {
    "gateway": check_gateway,
    "inference": check_inference,
    "engine": check_engine,
    "compose": check_compose,
    "features": check_features,
}
