"""The benchmarks' short mode, ``--smoke``: what ``make bench-smoke`` runs.

A short pass goes through the same setup, measurement and report code as
the full run, with one round, the smallest load points, a second or so per
measured run and tiny data, so that a benchmark that no longer works fails
in minutes instead of being found broken the next time someone needs its
figures. Its numbers mean nothing; only the shape of its report is checked
(``benchmarks/shapes.py``).

``SMOKE`` holds each benchmark's short-mode option values in one place: the
benchmark applies them as defaults when ``--smoke`` is given (options given
explicitly still win) and the shape checks read them to know which rows to
expect. Standard library only: the benchmarks run in three different
virtualenvs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

# The gateway binary of the short pass is the one in the project's gateway
# image, built with the same `cargo build --release --locked` as the full
# run's host build, because a cold release build alone takes minutes on two
# cores. Tagged `bench` like the inference image of the benchmarks, so a
# build of another tree cannot swap it.
GATEWAY_IMAGE = "dataplatform/gateway:bench"

# wrk's -d takes whole seconds: one second is the shortest run it makes.
SMOKE: dict[str, dict[str, Any]] = {
    "gateway": {
        "rounds": 1,
        "seconds": 1.0,
        "warmup": 1.0,
        "concurrency": [1, 8],
        "gateway_image": GATEWAY_IMAGE,
    },
    "inference": {"rounds": 1, "seconds": 1.0, "warmup": 1.0, "batches": [1, 32]},
    "engine": {"runs": 1},
    "features": {"sizes": [4000], "warmup_size": 1000, "rounds": 1},
    # compare.sh --smoke sets its run count itself (bash); the checks read it here.
    "compose": {"runs": 1},
}


def add_smoke_flag(parser: argparse.ArgumentParser, bench: str) -> None:
    shown = ", ".join(f"--{k.replace('_', '-')} {_shown(v)}" for k, v in SMOKE[bench].items())
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"short pass for make bench-smoke: defaults {shown} (explicit options still apply)",
    )


def parse(
    parser: argparse.ArgumentParser, bench: str, argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """``parser``'s arguments, with ``SMOKE[bench]`` as the defaults when
    ``--smoke`` is among them. Parsed twice so that an option given on the
    command line overrides the short mode's value, as it does the full run's."""
    args = parser.parse_args(argv)
    if getattr(args, "smoke", False):
        parser.set_defaults(**SMOKE[bench])
        args = parser.parse_args(argv)
    return args


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)
