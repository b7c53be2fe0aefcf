"""The prod run's command line, the order of its steps, and resuming a kept stack at one of them."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from pulumi import automation as auto

from cluster.certs import certificate_paths
from dataplatform.project import PROJECT
from tools import e2e_prod
from tools.e2e_common import cli
from tools.e2e_common.report import Failure
from tools.e2e_prod.data import data, destroy_and_up
from tools.e2e_prod.deploy import deploy, images, no_op
from tools.e2e_prod.monitoring import monitoring
from tools.e2e_prod.resilience import resilience
from tools.e2e_prod.security import driver_account_limits, network_policies, pod_security
from tools.e2e_prod.serving import serving
from tools.e2e_prod.spark import group_count_job, jobs_that_cannot_run, pipeline, scheduled
from tools.e2e_prod.stack import ProdStack, log
from tools.e2e_prod.stream import streaming
from tools.repo import ROOT
from tools.signals import deliver_sigint

STEPS = (
    "network",
    "jobs",
    "csv",
    "scheduled",
    "serving",
    "monitoring",
    "resilience",
    "stream",
    "data",
    "destroy",
)


def resume(prod: ProdStack) -> None:
    """Take up a stack kept by an earlier run (``--keep``) as it is."""
    prod.stack = auto.select_stack(stack_name=prod.name, work_dir=str(ROOT))
    prod.config = {
        key.split(":", 1)[1]: (json.loads(v.value) if v.value.startswith(("[", "{")) else v.value)
        for key, v in prod.stack.get_all_config().items()
        if key.startswith(f"{PROJECT}:")
    }
    prod.refresh_outputs()
    # The certificate the kept stack was given: the test trusts only it.
    cert, _ = certificate_paths(prod.tls_dir)
    cert.write_text(prod.config["gateway"]["ingress"]["tlsCertificate"])


# The first up's time against its peer's, both from a node that holds every
# image: the project's target, reported and not asserted (a timing).
PEER_GOAL = 1.3


def timing_table(prod: ProdStack) -> None:
    print("\n| step | seconds |\n|---|---|")
    for what, seconds in prod.timings:
        print(f"| {what} | {seconds:.1f} |")
    first = dict(prod.timings).get("first up, every object awaited ready")
    peer = next((s for w, s in prod.timings if w.startswith("peer:")), None)
    if first and peer:
        verdict = "met" if first / peer <= PEER_GOAL else "missed"
        print(f"\nfirst up / peer: {first / peer:.2f}x (goal <= {PEER_GOAL}x: {verdict})")


def cleanup(prod: ProdStack) -> None:
    if prod.stack is not None:
        with contextlib.suppress(auto.CommandError):
            prod.destroy()
    prod.kube.run(
        "delete",
        "namespace",
        prod.namespace,
        prod.jobs_namespace,
        f"{prod.namespace}-peer",
        f"{prod.namespace}-peer-jobs",
        f"{prod.operator_namespace}-peer",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=300s",
        check_rc=False,
    )


def run(prod: ProdStack, keep: bool, start_at: str | None = None) -> int:
    try:
        steps = STEPS[STEPS.index(start_at) :] if start_at else STEPS
        version = ""
        if start_at is None:
            images(prod)
            deploy(prod)
            no_op(prod)
            pod_security(prod)
        else:
            resume(prod)
            if start_at in ("csv", "scheduled", "serving", "monitoring", "resilience"):
                version = prod.live_model()
        if "network" in steps:
            network_policies(prod)
            driver_account_limits(prod)
        if "jobs" in steps:
            version = pipeline(prod)
            jobs_that_cannot_run(prod)
        if "csv" in steps:
            group_count_job(prod)
        if "scheduled" in steps:
            scheduled(prod)
        if "serving" in steps:
            serving(prod, version)
        if "monitoring" in steps:
            monitoring(prod)
        if "resilience" in steps:
            resilience(prod, version)
        if "stream" in steps:
            streaming(prod)
        if "data" in steps:
            data(prod)
        if "destroy" in steps:
            destroy_and_up(prod)
        if keep:
            log(f"kept: pulumi destroy --stack {prod.name} --yes")
            prod.stack = None
        else:
            prod.destroy()
            prod.kube.run("delete", "namespace", prod.namespace, "--wait=true", "--timeout=300s")
            prod.stack = None
        prod.report.print()
        timing_table(prod)
        return 0
    except (Failure, subprocess.CalledProcessError) as exc:
        prod.report.print()
        timing_table(prod)
        log(f"FAILED: {exc}")
        if not keep:
            cleanup(prod)
        return 1
    except Exception:
        prod.report.print()
        log(f"FAILED unexpectedly:\n{traceback.format_exc()}")
        if not keep:
            cleanup(prod)
        return 1
    finally:
        if not keep:
            prod.forget()
        shutil.rmtree(prod.tls_dir, ignore_errors=True)
        prod.close()


def main(argv: list[str] | None = None) -> int:
    deliver_sigint()
    parser = cli.parser(
        "python -m tools.e2e_prod", e2e_prod.__doc__, "e2e-prod", "push the images already built"
    )
    parser.add_argument(
        "--no-peer",
        dest="peer",
        action="store_false",
        help="skip timing kubectl apply --server-side + kubectl wait of the same manifests (step 9)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack up at the end, or after a failure"
    )
    parser.add_argument(
        "--resume-at",
        choices=STEPS,
        help="take up the stack a --keep run left and start at this step",
    )
    args = parser.parse_args(argv)
    if not cli.pulumi_on_path():
        return 2
    prod = ProdStack(args.stack, args.rows, build=not args.no_build, with_peer=args.peer)
    if not Path(prod.cluster["ADMIN_KUBECONFIG"]).exists():
        print("no cluster: run make cluster first", file=sys.stderr)
        return 2
    return run(prod, keep=args.keep, start_at=args.resume_at)


if __name__ == "__main__":
    sys.exit(main())
