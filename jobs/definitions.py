"""The catalogue of job definitions: each job's name, command line and module.

``JOBS`` is the one place a job is named; ``JOB_NAMES`` lists those names
for the stack and the tools. Importable without Spark: ``python -m jobs
list`` and ``submit`` run on a machine with no pyspark, and validate a job's
arguments there before anything is launched. A job's module (which needs
pyspark) is imported only to run it.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.timeutil import parse_as_of, parse_utc

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.config import Settings

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_TRIGGER_SECONDS = 5.0
ROWS_PER_PARTITION = 1_000_000
# Formats a job reads its inputs in: a Delta table, or plain files.
INPUT_FORMATS = ("delta", "parquet", "csv")

Runner = Callable[["SparkSession", "Settings", argparse.Namespace], None]


@dataclass(frozen=True)
class Job:
    """A job: its name, summary, arguments and where its code lives.

    ``inputs`` name the arguments that read data: given a local path,
    ``submit`` uploads it to the stack first. ``outputs`` name the arguments
    that write data, which must be store URIs when the job runs on a stack.
    """

    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    module: str
    uses_redis: bool = False
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    # Spark settings the job needs whichever way it is launched, over the
    # stack's own (``jobs.launch`` adds them).
    conf: tuple[tuple[str, str], ...] = ()

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=prog or self.name, description=self.summary)
        self.add_arguments(parser)
        return parser

    @property
    def run(self) -> Runner:
        runner: Runner = importlib.import_module(self.module).run
        return runner


def keywords(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """Parsed arguments as keyword arguments of the same names, for the
    functions a job hands its command line to."""
    return {name: getattr(args, name) for name in names}


def event_counts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="CSV file or directory with a header row (path or s3a:// URI)")
    parser.add_argument("--column", default=None, help="column to group by (default: the first column)")
    parser.add_argument("--delimiter", default=",", help="field delimiter (default ,)")
    parser.add_argument("--output", default=None, help="also write the counts to this table or directory")
    parser.add_argument("--format", choices=INPUT_FORMATS, default="delta")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--show", type=int, default=100, help="groups to print, largest first")


def datagen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="number of events (default 1M)")
    parser.add_argument("--entities", type=int, default=10_000, help="number of entities (default 10k)")
    parser.add_argument(
        "--start",
        type=parse_utc,
        default=parse_utc("2025-01-01T00:00:00Z"),
        help="start of the time span, ISO-8601 (UTC if no offset)",
    )
    parser.add_argument("--days", type=float, default=30.0, help="length of the time span in days")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--format",
        choices=INPUT_FORMATS,
        default="delta",
        help="delta (default: a table with versions), parquet or csv (plain files for other tools)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help=f"output partitions (default: the parallelism, at least one per {ROWS_PER_PARTITION:,} rows)",
    )
    parser.add_argument("--output", help="events directory (default s3a://<raw bucket>/events)")
    parser.add_argument("--labels-output", help="labels directory (default s3a://<raw bucket>/labels)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def as_of_argument(parser: argparse.ArgumentParser, table: str) -> None:
    parser.add_argument(
        "--as-of",
        type=parse_as_of,
        default=None,
        help=f"read the {table} table at this version (0, 1, ...) or ISO-8601 time (default: current)",
    )


def online_arguments(parser: argparse.ArgumentParser) -> None:
    """How a job writes the online copy: ``online.OnlineTarget.from_settings``'s two knobs."""
    parser.add_argument(
        "--ttl-seconds",
        type=int,
        default=DEFAULT_TTL_SECONDS,
        help="TTL of the online hashes (default 7 days)",
    )
    parser.add_argument("--batch-commands", type=int, default=500, help="Redis commands per pipeline")


def features_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="raw events (default s3a://<raw bucket>/events)")
    parser.add_argument("--input-format", choices=INPUT_FORMATS, default="delta")
    as_of_argument(parser, "events")
    parser.add_argument("--output", help="features table (default s3a://<lake bucket>/features)")
    parser.add_argument(
        "--reference-time",
        type=parse_utc,
        default=None,
        help="as-of time, ISO-8601 (default: the latest event time)",
    )
    parser.add_argument(
        "--version",
        default=None,
        help="this run's name, in the table's commit and Redis (default: now, YYYYMMDDTHHMMSSZ)",
    )
    parser.add_argument(
        "--online",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the online copy to Redis (default on)",
    )
    online_arguments(parser)


def train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", help="features table (default s3a://<lake bucket>/features)")
    as_of_argument(parser, "features")
    parser.add_argument("--labels", help="labels (default s3a://<raw bucket>/labels)")
    parser.add_argument("--labels-format", choices=INPUT_FORMATS, default="delta")
    parser.add_argument("--registry", help="model registry root (default s3a://<models bucket>)")
    parser.add_argument("--name", default="churn", help="model name (default churn)")
    parser.add_argument("--version", default=None, help="version (default: now, YYYYMMDDTHHMMSSZ)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reg-param", type=float, default=0.001)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument(
        "--min-auc",
        type=float,
        default=0.6,
        help="refuse to publish a model below this held-out AUC (default 0.6)",
    )


def features_stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landing", help="where event files land (default s3a://<raw bucket>/landing)")
    parser.add_argument(
        "--quarantine", help="where refused files go, with the reason (default s3a://<raw bucket>/quarantine)"
    )
    parser.add_argument("--events", help="the events table appended to (default s3a://<raw bucket>/events)")
    parser.add_argument(
        "--checkpoint",
        help="the stream's progress (default s3a://<lake bucket>/_checkpoints/features_stream)",
    )
    parser.add_argument(
        "--trigger-seconds",
        type=float,
        default=DEFAULT_TRIGGER_SECONDS,
        help=f"a micro-batch at most this often (default {DEFAULT_TRIGGER_SECONDS:g})",
    )
    parser.add_argument(
        "--max-files-per-trigger",
        type=int,
        default=100,
        help="landed files per micro-batch at most (default 100)",
    )
    parser.add_argument(
        "--once", action="store_true", help="take every file landed so far, then stop (a catch-up run)"
    )
    online_arguments(parser)


DEFAULT_RETENTION_HOURS = 7 * 24


def vacuum_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        help="the Delta table to vacuum (default: the lake's events, labels and features)",
    )
    parser.add_argument(
        "--retention-hours",
        type=float,
        default=DEFAULT_RETENTION_HOURS,
        help=f"keep the files of versions this recent (default {DEFAULT_RETENTION_HOURS})",
    )


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "event_counts",
            "count the rows of a CSV per value of a column",
            event_counts_arguments,
            "jobs.event_counts",
            inputs=("input",),
            outputs=("output",),
        ),
        Job(
            "datagen",
            "generate deterministic synthetic events and labels",
            datagen_arguments,
            "jobs.datagen",
            outputs=("output", "labels_output"),
        ),
        Job(
            "features",
            "raw events to per-entity features (a version of the lake table + Redis)",
            features_arguments,
            "jobs.features",
            uses_redis=True,
            inputs=("input",),
            outputs=("output_root",),
        ),
        Job(
            "features_stream",
            "landed event files to the events table and online features, continuously",
            features_stream_arguments,
            "jobs.features_stream",
            uses_redis=True,
            outputs=("landing", "quarantine", "events", "checkpoint"),
            # A stream never ends, so its executors must go when idle, even
            # those holding shuffle files of batches long done or blocks of
            # Delta's cached table state: otherwise the executors a burst of
            # files scaled it to are held for good.
            conf=(
                ("spark.dynamicAllocation.executorIdleTimeout", "30s"),
                ("spark.dynamicAllocation.cachedExecutorIdleTimeout", "30s"),
                ("spark.dynamicAllocation.shuffleTracking.timeout", "30s"),
                ("spark.cleaner.periodicGC.interval", "2min"),
            ),
        ),
        Job(
            "train",
            "train, evaluate and publish the model to the registry",
            train_arguments,
            "jobs.train",
            inputs=("features", "labels"),
            outputs=("registry",),
        ),
        Job(
            "vacuum",
            "remove the lake's files that no retained table version needs",
            vacuum_arguments,
            "jobs.vacuum",
            outputs=("table",),
        ),
    )
}

JOB_NAMES: tuple[str, ...] = tuple(JOBS)
