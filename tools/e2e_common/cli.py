"""The command-line options both runs take, and the check that the Pulumi CLI is there to run them."""

from __future__ import annotations

import argparse
import os
import shutil
import sys


def parser(prog: str, doc: str | None, stack_prefix: str, no_build_help: str) -> argparse.ArgumentParser:
    """``--stack``, ``--rows`` and ``--no-build``; the first paragraph of ``doc`` describes the run."""
    result = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])
    result.add_argument("--stack", default=f"{stack_prefix}-{os.getpid()}", help="ephemeral stack name")
    result.add_argument("--rows", type=int, default=200_000, help="events datagen writes")
    result.add_argument("--no-build", action="store_true", help=no_build_help)
    return result


def pulumi_on_path() -> bool:
    if shutil.which("pulumi") is None:
        print("pulumi is not on PATH: run scripts/bootstrap.sh and source its env.sh", file=sys.stderr)
        return False
    return True
