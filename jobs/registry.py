"""The jobs this package runs, by name."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import SparkSession

from jobs import datagen, event_counts, features, train
from jobs.config import Settings


@dataclass(frozen=True)
class Job:
    name: str
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[SparkSession, Settings, argparse.Namespace], None]
    uses_redis: bool = False

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=prog or self.name, description=self.summary)
        self.add_arguments(parser)
        return parser


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "event_counts",
            "count CSV events per value of a column",
            event_counts.add_arguments,
            event_counts.run,
        ),
        Job(
            "datagen",
            "generate deterministic synthetic events and labels",
            datagen.add_arguments,
            datagen.run,
        ),
        Job(
            "features",
            "raw events to per-entity features (lake snapshot + Redis)",
            features.add_arguments,
            features.run,
            uses_redis=True,
        ),
        Job("train", "train, evaluate and publish the model to the registry", train.add_arguments, train.run),
    )
}
