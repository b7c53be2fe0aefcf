"""``make examples``: the example program deployed the way a platform team would, checked, destroyed.

1. ``pip wheel .``: the library as a wheel, installed with the example's
   requirements into a fresh virtualenv of a copy of ``examples/python``
   made outside the repository, so nothing of the checkout is importable;
2. on the local Docker engine: the example's two platforms side by side
   (each with its own names and free host ports), on a throwaway stack in a
   throwaway local backend;
3. on the local cluster (``make cluster``), when it answers: the two
   platforms again, each in a namespace the program creates, through the
   program's own Kubernetes provider, one Spark Operator installed by the
   first and reused by the second;
4. in each tier, for each platform: a model published to its own MinIO and
   a prediction from it through its own gateway; a no-op ``up`` changes
   nothing; the second platform removed from the program, the first still
   serves from its model and keeps the object written to its raw bucket;
5. on the cluster again, the YAML example (``examples/yaml``): the
   component served to Pulumi YAML by ``provider/``, up, a prediction
   through its gateway (its credentials read from its Secrets, as a cluster
   admin would), a no-op ``up`` that changes nothing;
6. everything destroyed (volumes purged) and the stacks removed, whatever
   happened.

Install-to-first-``up`` and the no-op ``up`` are printed; the no-op must
change nothing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import yaml

from cluster.settings import cluster_settings
from jobs.conventions import NAME_LABEL
from tools.defaults import host_port_keys
from tools.e2e.machine import STANDINS, free_ports
from tools.e2e_common.report import Failure, Report, check, wait_for
from tools.e2e_common.stores import s3_client
from tools.e2e_common.web import http
from tools.e2e_prod.deploy import push_pinned
from tools.e2e_prod.kube import Kube
from tools.e2e_prod.stack import load_overrides
from tools.harness import merge_config, stack_config
from tools.repo import ROOT
from tools.signals import deliver_sigint

EXAMPLE = ROOT / "examples" / "python"
PLATFORMS = ["analytics", "research"]
JOBS_PYTHON = ROOT / "jobs" / ".venv" / "bin" / "python"
# Light enough for two platforms on one 2-core node or engine.
LIGHT = {
    "gateway": {"replicas": 1, "maxReplicas": 1},
    "inference": {"replicas": 1, "maxReplicas": 1},
    "grafana": {"enabled": False},
    "purgeOnDestroy": True,
}
# Ceilings for the figures README.md states: a regression several times
# over fails, a busy machine does not.
FIRST_UP_CEILING_S = 900.0
NO_OP_CEILING_S = 60.0
# Left in each platform's raw bucket; the platform that stays must keep it.
MARKER_KEY = "examples/marker.txt"

Endpoints = Callable[[dict[str, Any]], AbstractContextManager[tuple[str, str]]]


def log(message: str) -> None:
    print(f"[examples {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command: list[str], cwd: Path, env: dict[str, str], what: str, timeout: float = 1800) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise Failure(f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    return done.stdout


def sample_objects(version: str) -> dict[str, bytes]:
    """``tools.sample_model``'s objects for ``version``, made in the jobs'
    environment (onnx is there, not in this one)."""
    out = subprocess.run(
        [str(JOBS_PYTHON), "-m", "tools.sample_model", version],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {key: base64.b64decode(body) for key, body in json.loads(out).items()}


class Program:
    """An example program and its stacks, in a throwaway local backend under
    ``workdir``: by default the Python example, copied outside the
    repository (``install`` puts the wheel in its virtualenv)."""

    def __init__(
        self,
        workdir: Path,
        report: Report,
        directory: Path | None = None,
        project: str = "two-platforms",
    ) -> None:
        self.workdir = workdir
        self.report = report
        self.dir = directory or workdir / "two-platforms"
        self.project = project
        backend = workdir / "state"
        backend.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{backend}",
            "PULUMI_CONFIG_PASSPHRASE": "examples",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
        self.env.pop("PYTHONPATH", None)
        self.stacks: list[str] = []
        self.last_changes: list[str] = []

    def install(self) -> float:
        start = time.monotonic()
        dist = self.workdir / "dist"
        run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
            self.workdir,
            self.env,
            "pip wheel .",
        )
        wheels = sorted(dist.glob("dataplatform-*.whl"))
        check(len(wheels) == 1, f"pip wheel made {[w.name for w in wheels]}")
        shutil.copytree(
            EXAMPLE, self.dir, ignore=shutil.ignore_patterns(".venv", "__pycache__", "Pulumi.*.yaml")
        )
        python = self.dir / ".venv" / "bin" / "python"
        run([sys.executable, "-m", "venv", str(self.dir / ".venv")], self.dir, self.env, "python -m venv")
        run(
            [str(python), "-m", "pip", "install", "--quiet", str(wheels[0]), "-r", "requirements.txt"],
            self.dir,
            self.env,
            "pip install the wheel",
        )
        where = run(
            [str(python), "-c", "import dataplatform; print(dataplatform.__file__)"],
            self.workdir,
            self.env,
            "import dataplatform",
        ).strip()
        check(not Path(where).is_relative_to(ROOT), f"the example imports the checkout's library: {where}")
        self.report.add("wheel", f"{wheels[0].name}, imported from {Path(where).parent}")
        return time.monotonic() - start

    def pulumi(self, stack: str, *args: str, timeout: float = 1800) -> str:
        return run(
            ["pulumi", *args, "--stack", stack, "--non-interactive"],
            self.dir,
            self.env,
            f"pulumi {args[0]}",
            timeout,
        )

    def new_stack(self, stack: str, config: dict[str, Any]) -> None:
        """A stack whose settings file holds ``config`` (objects as objects)."""
        self.pulumi(stack, "stack", "init")
        self.stacks.append(stack)
        self.set_config(stack, config)

    def set_config(self, stack: str, config: dict[str, Any]) -> None:
        path = self.dir / f"Pulumi.{stack}.yaml"
        data = yaml.safe_load(path.read_text()) if path.exists() else {}
        data = data or {}
        data["config"] = {
            **(data.get("config") or {}),
            **{f"{self.project}:{k}": v for k, v in config.items()},
        }
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def up(self, stack: str) -> tuple[dict[str, int], float]:
        """``pulumi up``; the changes it made (by operation) and its seconds."""
        start = time.monotonic()
        out = self.pulumi(stack, "up", "--yes", "--skip-preview", "--diff", timeout=2400)
        seconds = time.monotonic() - start
        # What changed, for a failure message: the diff's changed lines.
        self.last_changes = [
            line for line in out.splitlines() if line.lstrip()[:2] in ("~ ", "+ ", "- ", "+-")
        ]
        history = json.loads(self.pulumi(stack, "stack", "history", "--json", "--show-secrets"))
        changes = {
            k: v
            for k, v in (history[0].get("resourceChanges") or {}).items()
            if k not in ("same", "read") and v
        }
        return changes, seconds

    def outputs(self, stack: str) -> dict[str, Any]:
        return dict(json.loads(self.pulumi(stack, "stack", "output", "--json", "--show-secrets")))

    def remove_all(self) -> None:
        for stack in self.stacks:
            try:
                self.pulumi(stack, "destroy", "--yes", "--skip-preview", timeout=2400)
                self.pulumi(stack, "stack", "rm", "--yes")
            except Failure as failure:
                log(f"clean-up of {stack}: {failure}")
            (self.dir / f"Pulumi.{stack}.yaml").unlink(missing_ok=True)
        self.stacks.clear()


def minio_client(outputs: dict[str, Any], endpoint: str) -> Any:
    credentials = {
        "s3_access_key": outputs["minio_root_user"],
        "s3_secret_key": outputs["minio_root_password"],
    }
    return s3_client(endpoint, credentials)


def publish(name: str, outputs: dict[str, Any], endpoints: Endpoints, version: str) -> None:
    """The sample model, as ``version``, into the platform's own MinIO, and a
    marker object into its raw bucket (``raw_marker`` reads it back)."""
    with endpoints(outputs) as (_, minio):
        s3 = minio_client(outputs, minio)
        # In the order made: the LATEST pointer last.
        for key, body in sample_objects(version).items():
            s3.put_object(Bucket="models", Key=key, Body=body)
        s3.put_object(Bucket="raw", Key=MARKER_KEY, Body=version.encode())
    log(f"{name}: model {version} published to its MinIO")


def raw_marker(outputs: dict[str, Any], endpoints: Endpoints) -> str:
    """The marker ``publish`` left in the platform's raw bucket."""
    with endpoints(outputs) as (_, minio):
        body = minio_client(outputs, minio).get_object(Bucket="raw", Key=MARKER_KEY)["Body"].read()
    return str(body.decode())


def serves(name: str, outputs: dict[str, Any], endpoints: Endpoints, version: str) -> None:
    """A prediction from model ``version`` through the platform's own gateway."""
    with endpoints(outputs) as (gateway, _):
        headers = {
            "Authorization": f"Bearer {outputs['platform_credentials']['gateway_api_key']}",
            "Content-Type": "application/json",
        }

        def predicted() -> bool:
            live = http("GET", f"{gateway}/v1/models", None, headers)
            if live.status != 200 or live.json().get("version") != version:
                return False
            row = dict.fromkeys(live.json()["feature_names"], 0.5)
            reply = http("POST", f"{gateway}/v1/predict", json.dumps({"instances": [row]}).encode(), headers)
            return reply.status == 200 and reply.json()["model"]["version"] == version

        wait_for(
            f"{name}: a prediction from model {version} through its gateway",
            predicted,
            timeout=300,
            interval=3,
        )


def docker_endpoints(outputs: dict[str, Any]) -> AbstractContextManager[tuple[str, str]]:
    return contextlib.nullcontext(
        (str(outputs["gateway_url"]).rstrip("/"), str(outputs["minio_endpoint"]).rstrip("/"))
    )


def cluster_endpoints(kube: Kube) -> Endpoints:
    @contextlib.contextmanager
    def endpoints(outputs: dict[str, Any]) -> Iterator[tuple[str, str]]:
        namespace = outputs["kubernetes"]["namespace"]
        with (
            kube.forward(namespace, "svc/gateway", 80) as gateway,
            kube.forward(namespace, "svc/minio", 9000) as s3,
        ):
            yield f"http://127.0.0.1:{gateway}", f"http://127.0.0.1:{s3}"

    return endpoints


def docker_settings() -> tuple[dict[str, Any], dict[str, Any]]:
    """The dev stack's settings for both platforms (images from this engine,
    nothing built: the library has no sources to build from), and free host
    ports for each."""
    shared = merge_config(stack_config("dev"), {**LIGHT, "buildImages": False, "images": dict(STANDINS)})
    shared.pop("target", None)
    keys = host_port_keys()
    ports = iter(free_ports(len(keys) * len(PLATFORMS)))
    per_platform = {name: {"hostPorts": {key: next(ports) for key in keys}} for name in PLATFORMS}
    return shared, per_platform


def cluster_config(kubeconfig: str) -> dict[str, Any]:
    """The prod stack's settings on the local cluster, its images pinned, minus
    what one platform alone may have (the namespace, the gateway's Ingress host)."""
    shared = merge_config(stack_config("prod"), merge_config(load_overrides(), LIGHT))
    shared, _ = push_pinned(shared, build=False)
    shared.pop("target", None)
    shared.get("kubernetes", {}).pop("namespace", None)
    shared.get("gateway", {}).pop("ingress", None)
    return {"tier": "kubernetes", "kubeconfig": kubeconfig, "platforms": PLATFORMS, "settings": shared}


def tier_run(
    program: Program, stack: str, config: dict[str, Any], endpoints: Endpoints, report: Report
) -> float:
    """Both platforms up, each serving its own model; a no-op; one removed."""
    program.new_stack(stack, config)
    _, first_up = program.up(stack)
    report.add(f"{stack}: first up of two platforms", f"{first_up:.1f} s")
    outputs = program.outputs(stack)
    versions = {name: f"{name}-{int(time.time())}" for name in PLATFORMS}
    for name in PLATFORMS:
        publish(name, outputs[name], endpoints, versions[name])
    for name in PLATFORMS:
        serves(name, outputs[name], endpoints, versions[name])
        report.ok(f"{stack}: {name} serves its own model through its own gateway")
    check(
        len({outputs[name]["platform_credentials"]["gateway_api_key"] for name in PLATFORMS})
        == len(PLATFORMS),
        "the two platforms share a gateway key",
    )
    changes, no_op = program.up(stack)
    check(changes == {}, f"{stack}: a no-op up changed {changes}:\n" + "\n".join(program.last_changes[:60]))
    check(
        no_op <= NO_OP_CEILING_S, f"{stack}: a no-op up took {no_op:.1f} s (ceiling {NO_OP_CEILING_S:.0f} s)"
    )
    report.add(f"{stack}: no-op up", f"{no_op:.1f} s, 0 changes")
    program.set_config(stack, {"platforms": PLATFORMS[:1]})
    changes, seconds = program.up(stack)
    # Deletes only; on a cluster the first platform's Spark Operator also
    # stops watching the removed jobs namespace (its chart's values:
    # updates), and the removed platform's read of the API server's
    # EndpointSlice is dropped from the state (discard: nothing is deleted).
    allowed = {"delete", "update", "discard"} if config["tier"] == "kubernetes" else {"delete"}
    check("delete" in changes and set(changes) <= allowed, f"{stack}: removing {PLATFORMS[1]} did {changes}")
    kept = PLATFORMS[0]
    serves(kept, outputs[kept], endpoints, versions[kept])
    marker = raw_marker(outputs[kept], endpoints)
    check(marker == versions[kept], f"{stack}: {kept}'s raw bucket holds {marker!r}, not {versions[kept]!r}")
    removed = f"{PLATFORMS[1]} removed ({changes['delete']} resources, {seconds:.0f} s)"
    report.ok(f"{stack}: {removed}; {kept} still serves its model, its raw data intact")
    return first_up


def secret_value(kube: Kube, namespace: str, workload: str, key: str) -> str:
    """A file of a workload's Secret, read as a cluster admin would."""
    found = kube.json("get", "secret", "-n", namespace, "-l", f"{NAME_LABEL}={workload}")
    for item in found["items"]:
        if key in (item.get("data") or {}):
            return base64.b64decode(item["data"][key]).decode().strip()
    raise Failure(f"no Secret of {workload} in {namespace} holds {key}")


def yaml_run(workdir: Path, kube: Kube, kubeconfig: str, endpoints: Endpoints, report: Report) -> None:
    """The YAML example (``examples/yaml``): the component from ``provider/``,
    up, a prediction through its gateway, a no-op, destroyed."""
    plugin = ROOT / "provider"
    python = plugin / "venv" / "bin" / "python"
    env = {**os.environ}
    env.pop("PYTHONPATH", None)
    if not python.exists():
        run(["python3.11", "-m", "venv", str(plugin / "venv")], plugin, env, "the package's virtualenv")
    run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
        plugin,
        env,
        "its requirements",
    )
    program = Program(workdir, report, ROOT / "examples" / "yaml", "dataplatform-yaml")
    # The example's provider reads the cluster from $KUBECONFIG.
    program.env["KUBECONFIG"] = kubeconfig
    try:
        program.new_stack("yaml", {})
        _, first_up = program.up("yaml")
        report.add("yaml: first up (the component served by provider/)", f"{first_up:.1f} s")
        found = program.outputs("yaml")
        namespace = str(found["namespace"])
        outputs = {
            "kubernetes": {"namespace": namespace},
            "minio_root_user": secret_value(kube, namespace, "minio", "root-user"),
            "minio_root_password": secret_value(kube, namespace, "minio", "root-password"),
            "platform_credentials": {"gateway_api_key": secret_value(kube, namespace, "gateway", "api-keys")},
        }
        version = f"yaml-{int(time.time())}"
        publish("yaml", outputs, endpoints, version)
        serves("yaml", outputs, endpoints, version)
        report.ok("yaml: the platform declared in Pulumi YAML serves its model through its gateway")
        changes, no_op = program.up("yaml")
        check(changes == {}, f"yaml: a no-op up changed {changes}:\n" + "\n".join(program.last_changes[:60]))
        report.add("yaml: no-op up", f"{no_op:.1f} s, 0 changes")
    finally:
        program.remove_all()


def main() -> int:
    deliver_sigint()
    parser = argparse.ArgumentParser(prog="python -m tools.examples", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tier",
        choices=("docker", "kubernetes", "yaml", "all"),
        default="all",
        help="all (default): docker, then kubernetes and yaml when the local cluster answers; "
        "kubernetes runs the YAML example too, yaml only that one",
    )
    parser.add_argument("--keep", action="store_true", help="leave the work directory (not the stacks)")
    options = parser.parse_args()
    report = Report()
    workdir = Path(tempfile.mkdtemp(prefix="dp-examples-"))
    program = Program(workdir, report)
    status = 0
    try:
        install = 0.0
        if options.tier != "yaml":
            install = program.install()
            report.add("wheel built and installed with the example's requirements", f"{install:.1f} s")
        if options.tier in ("docker", "all"):
            log("docker: two platforms on the local engine")
            shared, per_platform = docker_settings()
            config = {
                "tier": "docker",
                "platforms": PLATFORMS,
                "settings": shared,
                "perPlatform": per_platform,
            }
            first = install + tier_run(program, "docker", config, docker_endpoints, report)
            report.add("docker: install to first up (wheel, virtualenv, first up)", f"{first:.1f} s")
            check(
                first <= FIRST_UP_CEILING_S,
                f"install to first up: {first:.0f} s, over {FIRST_UP_CEILING_S:.0f} s",
            )
        if options.tier in ("kubernetes", "yaml", "all"):
            settings = cluster_settings("ADMIN_KUBECONFIG", "CLUSTER_BIN")
            kubeconfig = settings["ADMIN_KUBECONFIG"]
            os.environ["PATH"] = f"{settings['CLUSTER_BIN']}{os.pathsep}{os.environ['PATH']}"
            program.env["PATH"] = os.environ["PATH"]
            kube = Kube(kubeconfig, lambda line: None)
            if not Path(kubeconfig).exists() or "Ready" not in kube.run("get", "nodes", check_rc=False):
                if options.tier != "all":
                    raise Failure("the local cluster does not answer: make cluster first")
                log("kubernetes: no local cluster answers (make cluster); skipped")
            else:
                endpoints = cluster_endpoints(kube)
                config = cluster_config(kubeconfig)  # pushes the images to the cluster's registry
                if options.tier != "yaml":
                    log("kubernetes: two platforms on the local cluster, one namespace each")
                    tier_run(program, "kubernetes", config, endpoints, report)
                    program.remove_all()
                log("yaml: the platform from a Pulumi YAML program, through the component package")
                yaml_run(workdir, kube, kubeconfig, endpoints, report)
    except Failure as failure:
        log(f"FAILED: {failure}")
        status = 1
    except Exception:
        traceback.print_exc()
        status = 1
    finally:
        program.remove_all()
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report.print()
    log("passed" if status == 0 else "failed")
    return status


if __name__ == "__main__":
    sys.exit(main())
