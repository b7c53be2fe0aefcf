"""The dev end-to-end run's command line, and the order of its steps."""

from __future__ import annotations

import subprocess
import sys
import traceback

from tools import e2e
from tools.e2e.deploy import deploy, no_op
from tools.e2e.machine import build_images, machine_overrides
from tools.e2e.monitoring import alerting, monitoring
from tools.e2e.pipeline import pipeline
from tools.e2e.resilience import resilience
from tools.e2e.serving import gateway
from tools.e2e.stack import DevStack
from tools.e2e.stream import streaming
from tools.e2e.teardown import cleanup, destroy
from tools.e2e_common import cli
from tools.e2e_common.report import Failure, log
from tools.signals import deliver_sigint


def run(dev: DevStack, build: bool, purge: bool, keep: bool) -> int:
    kept = False
    try:
        overrides, notes = machine_overrides(dev.engine)
        if purge:
            overrides["purgeOnDestroy"] = True
        for note in notes:
            dev.report.add("machine", note)
        if build:
            dev.report.add("images built (build-images.sh)", f"{build_images():.0f} s")
        deploy(dev, overrides)
        version = pipeline(dev)
        gateway(dev, version)
        monitoring(dev)
        no_op(dev)
        resilience(dev, version)
        alerting(dev)
        streaming(dev, overrides)
        if keep:
            dev.report.print()
            log(f"kept: pulumi destroy --stack {dev.name} --yes && pulumi stack rm {dev.name} --yes")
            kept = True
            return 0
        destroy(dev, purge)
        dev.stack = None
        dev.report.print()
        return 0
    except (Failure, subprocess.CalledProcessError) as exc:
        dev.report.print()
        log(f"FAILED: {exc}")
        cleanup(dev)
        return 1
    except Exception:
        dev.report.print()
        log(f"FAILED unexpectedly:\n{traceback.format_exc()}")
        cleanup(dev)
        return 1
    finally:
        if not kept:
            dev.forget()
        dev.close()


def main(argv: list[str] | None = None) -> int:
    deliver_sigint()
    parser = cli.parser("python -m tools.e2e", e2e.__doc__, "e2e", "skip scripts/build-images.sh")
    parser.add_argument("--purge", action="store_true", help="destroy with purgeOnDestroy")
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack up after the checks (benchmarks)"
    )
    args = parser.parse_args(argv)
    if not cli.pulumi_on_path():
        return 2
    dev = DevStack(args.stack, args.rows)
    return run(dev, build=not args.no_build, purge=args.purge, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
