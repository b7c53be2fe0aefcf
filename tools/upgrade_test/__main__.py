"""The upgrade run's command line and the order of its steps."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.automation import OpType

from cluster.settings import cluster_settings
from tools import upgrade_test
from tools.e2e_common import cli
from tools.e2e_common.report import Failure, check, log, wait_for
from tools.e2e_common.stack import engine_config
from tools.repo import ROOT
from tools.signals import deliver_sigint
from tools.upgrade_test import data
from tools.upgrade_test.load import SteadyLoad
from tools.upgrade_test.plan import Plan
from tools.upgrade_test.release import Release, Worktree, previous_release
from tools.upgrade_test.tiers import Tier, make_tier


def use_own_backend(directory: Path) -> None:
    """Every pulumi command of this process keeps its state in ``directory``,
    its secrets under a passphrase of this run."""
    directory.mkdir(parents=True)
    os.environ["PULUMI_BACKEND_URL"] = directory.as_uri()
    os.environ["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_hex(16)
    os.environ.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)


def deploy_previous(tier: Tier, release: Release, worktree: Worktree, config: dict[str, Any]) -> None:
    state = tier.state
    state.stack = auto.create_stack(stack_name=state.name, work_dir=str(worktree.path))
    state.stack.set_all_config(engine_config(config))
    result, seconds = state.up(f"release {release.version}")
    created = (result.summary.resource_changes or {}).get(OpType.CREATE, 0)
    state.report.add(f"release {release.version}: up", f"{seconds:.1f} s, {created} resources created")
    state.refresh_outputs()
    tier.after_first_up()


def write_data(tier: Tier) -> data.Seeded:
    state = tier.state
    with tier.stores() as (client, s3):
        seeded = data.seed(client, s3, state.outputs["buckets"])
    key = state.credentials()["gateway_api_key"]
    with tier.gateway() as send:
        wait_for(
            "the gateway serving the seeded model", lambda: data.served(send, key), timeout=180, interval=2
        )
    state.report.ok(
        f"written: objects in raw and lake, {len(data.ENTITIES)} entities' online features and a marker in "
        f"Redis, model {data.MODEL_VERSION}; a prediction through the gateway answers with it"
    )
    return seeded


def switch_to_checkout(tier: Tier, worktree: Worktree, config: dict[str, Any]) -> None:
    """The same stack and state, driven by this checkout's program from now on,
    with the settings only this checkout knows added."""
    state = tier.state
    settings = f"Pulumi.{state.name}.yaml"
    shutil.copyfile(worktree.path / settings, ROOT / settings)
    state.stack = auto.select_stack(stack_name=state.name, work_dir=str(ROOT))
    state.stack.set_all_config(engine_config(tier.checkout_config(config)))


def preview(tier: Tier) -> Plan:
    state = tier.state
    plan = Plan()
    started = time.monotonic()
    state.stack.preview(on_output=state.out, on_event=plan.on_event, color="never")
    seconds = time.monotonic() - started
    state.report.add("preview with this checkout", f"{seconds:.1f} s: {plan.summary()}")
    renamed = plan.renamed()
    state.report.add("kept under their new names (aliases)", f"{len(renamed)} of {len(plan.steps)}")
    for step in plan.destructive() + plan.of(OpType.CREATE, OpType.UPDATE):
        log(f"  {step.describe()}")
    stateful = plan.stateful_touched()
    check(not stateful, "the update would delete or replace data or credentials:\n" + _lines(stateful))
    destructive = plan.destructive()
    check(not destructive, "the update would delete or replace resources:\n" + _lines(destructive))
    moved = plan.relocations()
    if moved:
        state.report.add("steps moving objects to the jobs namespace (no data)", str(len(moved)))
    rerun = plan.reruns()
    if rerun:
        state.report.add("steps running MinIO's setup again for a new user (no data)", str(len(rerun)))
    excused = [f"the {len(moved)} that move objects to the jobs namespace"] if moved else []
    excused += [f"the {len(rerun)} that run MinIO's setup again"] if rerun else []
    but = f" but {' and '.join(excused)}" if excused else ""
    state.report.ok(f"preview: no step deletes or replaces anything ({len(plan.steps)} steps){but}")
    return plan


def _lines(steps: list[Any]) -> str:
    return "\n".join(f"  {s.describe()}" for s in steps)


def update_under_load(tier: Tier) -> None:
    state = tier.state
    key = state.credentials()["gateway_api_key"]
    with tier.gateway() as send, SteadyLoad(send, key, data.ENTITIES) as load:
        time.sleep(3)
        result, seconds = state.up("this checkout")
        time.sleep(3)
    changes = {getattr(k, "value", k): v for k, v in (result.summary.resource_changes or {}).items() if v}
    state.report.add("update with this checkout", f"{seconds:.1f} s: {changes}")
    tally = load.tally
    state.report.add("predictions during the update", tally.describe())
    for offset, error in tally.unanswered[:10]:
        log(f"  no answer at {offset:.1f} s: {error}")
    check(tally.sent > 0, "the load sent nothing")
    failed = tally.server_errors + len(tally.unanswered)
    allowed = tier.failure_budget
    why = f" (allowed {allowed}: {tier.failure_budget_reason})" if allowed else ""
    check(failed <= allowed, f"{failed} predictions 5xx or unanswered during the update{why}")
    other = {s: n for s, n in tally.statuses.items() if s != 200 and s < 500}
    check(not other, f"predictions answered other than 200 during the update: {other}")
    check(
        seconds <= tier.update_ceiling_s,
        f"the update took {seconds:.0f} s, over {tier.update_ceiling_s:.0f} s",
    )
    state.report.ok(
        f"update under load: {tally.sent} predictions, {failed} 5xx or unanswered"
        + (f" of the {allowed} allowed ({tier.failure_budget_reason})" if allowed else "")
    )


def check_after(tier: Tier, seeded: data.Seeded, before: dict[str, Any]) -> None:
    state = tier.state
    state.refresh_outputs()
    after = state.outputs
    changed = sorted(k for k in before if after.get(k) != before[k] and k not in tier.changed_outputs)
    check(not changed, f"outputs changed by the update: {changed}")
    check(
        before["platform_credentials"] == after["platform_credentials"],
        "the platform's credentials changed",
    )
    added = sorted(set(after) - set(before))
    check(tier.location_output in after, f"no {tier.location_output!r} output after the update: {added}")
    state.report.ok(
        f"{len(before)} outputs unchanged (credentials and passwords among them); added: {', '.join(added)}"
    )

    def intact() -> bool:
        with tier.stores() as (client, s3):
            found = data.problems(client, s3, state.outputs["buckets"], seeded)
        check(not found, "data changed by the update:\n  " + "\n  ".join(found))
        return True

    wait_for("the stores answering after the update", intact, timeout=120, interval=3)
    key = state.credentials()["gateway_api_key"]
    with tier.gateway() as send:
        check(data.served(send, key), "no prediction with the seeded model after the update")
    state.report.ok(
        "after the update: raw and lake objects, Redis keys and the model intact; predictions 200"
    )


def converged(tier: Tier) -> None:
    state = tier.state
    plan = Plan()
    state.stack.preview(on_output=state.out, on_event=plan.on_event, color="never")
    changes = [s for s in plan.steps if s.op not in (OpType.SAME, OpType.READ)]
    check(not changes, "a second preview still has changes:\n" + _lines(changes))
    state.report.ok(f"a second preview: {len(plan.steps)} steps, all unchanged")


def run(tier: Tier, release: Release) -> int:
    started = time.monotonic()
    state = tier.state
    scratch = Path(tempfile.mkdtemp(prefix="upgrade-test-"))
    worktree = Worktree(release.commit, scratch / f"release-{release.version}")
    try:
        use_own_backend(scratch / "state")
        worktree.add()
        state.report.add(
            "previous release", f"{release.version} ({release.commit[:7]}), venv: {worktree.venv}"
        )
        config = tier.prepare()
        deploy_previous(tier, release, worktree, config)
        before = dict(state.outputs)
        seeded = write_data(tier)
        switch_to_checkout(tier, worktree, config)
        preview(tier)
        update_under_load(tier)
        check_after(tier, seeded, before)
        converged(tier)
        tier.destroy()
        state.stack = None
        total = time.monotonic() - started
        state.report.add("total", f"{total:.0f} s")
        check(total <= tier.total_ceiling_s, f"the run took {total:.0f} s, over {tier.total_ceiling_s:.0f} s")
        state.report.print()
        return 0
    except (Failure, subprocess.CalledProcessError, auto.CommandError) as exc:
        state.report.print()
        log(f"FAILED: {str(exc)[-4000:]}")
        tier.cleanup()
        return 1
    except Exception:
        state.report.print()
        log(f"FAILED unexpectedly:\n{traceback.format_exc()}")
        tier.cleanup()
        return 1
    finally:
        with contextlib.suppress(Exception):
            state.forget()
        worktree.remove()
        shutil.rmtree(scratch, ignore_errors=True)
        state.close()


def cluster_answers() -> bool:
    """Whether the local cluster (``make cluster``) is up and its node Ready."""
    settings = cluster_settings("ADMIN_KUBECONFIG", "CLUSTER_BIN")
    kubeconfig = settings["ADMIN_KUBECONFIG"]
    if not Path(kubeconfig).exists():
        return False
    done = subprocess.run(
        [str(Path(settings["CLUSTER_BIN"]) / "kubectl"), "--kubeconfig", kubeconfig, "get", "nodes"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0 and " Ready " in done.stdout


def main(argv: list[str] | None = None) -> int:
    deliver_sigint()
    parser = argparse.ArgumentParser(
        prog="python -m tools.upgrade_test", description=(upgrade_test.__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--tier",
        choices=("dev", "prod", "all"),
        default="all",
        help="all: dev, then prod when the local cluster answers (default)",
    )
    parser.add_argument("--stack", help="throwaway stack name (default upgrade-<tier>-<pid>)")
    parser.add_argument("--no-build", action="store_true", help="use the images already built")
    args = parser.parse_args(argv)
    if not cli.pulumi_on_path():
        return 2
    tiers = ["dev", "prod"] if args.tier == "all" else [args.tier]
    if "prod" in tiers and not cluster_answers():
        if args.tier == "prod":
            print("the local cluster does not answer: make cluster first", file=sys.stderr)
            return 2
        log("prod: no local cluster answers (make cluster); skipped")
        tiers.remove("prod")
    release = previous_release()
    status = 0
    for name in tiers:
        tier = make_tier(name, args.stack or f"upgrade-{name}-{os.getpid()}", build=not args.no_build)
        status = run(tier, release) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
