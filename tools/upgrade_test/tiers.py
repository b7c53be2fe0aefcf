"""What differs between the tiers in an upgrade run: configuration, images, stores, gateway, cleanup.

Each tier wraps the state object of its end-to-end run (``DevStack``,
``ProdStack``), so the stores, the gateway and the cleanup are reached the
way those runs reach them.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import Any, Protocol

import redis
from pulumi import automation as auto

from cluster.certs import certificate_paths, self_signed_command
from tools.e2e import teardown
from tools.e2e.machine import build_images, machine_overrides
from tools.e2e.stack import DevStack
from tools.e2e_common import gateway as scenario
from tools.e2e_common.gateway import Send
from tools.e2e_common.report import check, log, timed
from tools.e2e_common.stack import EphemeralStack
from tools.e2e_common.web import Response
from tools.e2e_prod.deploy import images
from tools.e2e_prod.serving import ingress
from tools.e2e_prod.stack import ProdStack
from tools.harness import merge_config, stack_config

# A rate limit the steady load stays far below, whatever the run's length.
GATEWAY = {"rateLimit": 1_000_000, "rateWindowSeconds": 60}
# Ingress settings added after 0.1.0, which that release would reject.
NEWER_INGRESS_KEYS = frozenset({"tlsCertificate", "tlsPrivateKey", "controllerNamespace"})
# The jobs 0.1.0 knows: a stack job of a later one fails its config check.
RELEASE_JOBS = frozenset({"event_counts", "datagen", "features", "train"})
# The services 0.1.0 knows; their host ports are the ones it accepts.
NEWER_HOST_PORTS = frozenset({"sparkHistory"})


class Tier(Protocol):
    name: str
    # Ceilings the run asserts, in seconds: the update with this checkout,
    # and the whole run (what CI spends on it).
    update_ceiling_s: float
    total_ceiling_s: float
    # Predictions that may fail (5xx or no answer) during the update, and
    # why; 0 where nothing excuses one.
    failure_budget: int
    failure_budget_reason: str
    # Outputs the update may change, and why.
    changed_outputs: frozenset[str]
    # Where the platform says it was deployed; 0.2.0 adds it to the outputs.
    location_output: str
    state: EphemeralStack

    def prepare(self) -> dict[str, Any]:
        """Images in place; returns the stack's configuration (config keys without the prefix)."""
        ...

    def after_first_up(self) -> None: ...

    def checkout_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The configuration this checkout is updated with: ``config`` (what
        the previous release was deployed with) and the settings only this
        checkout knows."""
        ...

    def stores(self) -> contextlib.AbstractContextManager[tuple[redis.Redis, Any]]: ...

    def gateway(self) -> contextlib.AbstractContextManager[Send]: ...

    def destroy(self) -> None:
        """``destroy`` with purgeOnDestroy: nothing of the stack is left, its data included."""
        ...

    def cleanup(self) -> None:
        """After a failure: destroy what is left and remove the data."""
        ...


class DevTier:
    name = "dev"
    update_ceiling_s = 120.0
    total_ceiling_s = 600.0
    failure_budget = 0
    failure_budget_reason = ""
    changed_outputs: frozenset[str] = frozenset()
    location_output = "docker"

    def __init__(self, stack: str, build: bool) -> None:
        self.ports: dict[str, int] = {}
        self.state: Any = DevStack(stack, rows=0)
        self.build = build

    def prepare(self) -> dict[str, Any]:
        if self.build:
            self.state.report.add("images built (build-images.sh)", f"{build_images():.0f} s")
        overrides, notes = machine_overrides(self.state.engine)
        for note in notes:
            self.state.report.add("machine", note)
        overrides["gateway"] = {**overrides.get("gateway", {}), **GATEWAY}
        # Both releases run the images build-images.sh made: the update
        # changes what the program declares, not what the images hold.
        overrides["buildImages"] = False
        overrides["purgeOnDestroy"] = True
        config = dict(merge_config(stack_config("dev"), overrides))
        # Every port is a free one; those of services 0.1.0 lacks are set
        # with the update (checkout_config).
        self.ports = dict(config["hostPorts"])
        config["hostPorts"] = {k: v for k, v in self.ports.items() if k not in NEWER_HOST_PORTS}
        return config

    def checkout_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "hostPorts": self.ports}

    def after_first_up(self) -> None:
        pass

    @contextlib.contextmanager
    def stores(self) -> Iterator[tuple[redis.Redis, Any]]:
        yield self.state.redis_client(), self.state.s3()

    @contextlib.contextmanager
    def gateway(self) -> Iterator[Send]:
        yield scenario.at_url(self.state.outputs["gateway_url"].rstrip("/"))

    def destroy(self) -> None:
        teardown.destroy(self.state, purge=True)

    def cleanup(self) -> None:
        teardown.cleanup(self.state)
        left = self.state.containers()
        for container in left:
            container.remove(force=True)
        if left:
            log(f"cleanup: removed containers {[c.name for c in left]}")


class ProdTier:
    name = "prod"
    update_ceiling_s = 180.0
    total_ceiling_s = 900.0
    # The update rolls the gateway and inference, and 0.1.0's pods stop
    # without the drain (preStop wait) later releases give them: the
    # ingress controller still sends a moment's requests to a pod that is
    # gone (seen: 4 or 5 per update, all at one moment, unanswered). From
    # this release on pods drain, and an inference pod deleted under load
    # costs none (make e2e-prod).
    failure_budget = 10
    failure_budget_reason = "0.1.0's gateway and inference pods stop without draining"
    # The jobs moved to their own namespace: where the CLI submits them,
    # and the services' names they use, change.
    changed_outputs = frozenset({"spark_submit"})
    location_output = "kubernetes"
    # Namespaces of its own, beside those of `make e2e-prod`; the Spark
    # Operator's chart is cluster-wide (its cluster roles and webhooks), so
    # the two runs take turns rather than overlap.
    NAMESPACE = "dataplatform-upgrade"
    HOST = "upgrade.dataplatform.localhost"

    def __init__(self, stack: str, build: bool) -> None:
        self.state: Any = ProdStack(stack, rows=0, build=build)

    def prepare(self) -> dict[str, Any]:
        prod = self.state
        prod.config["kubernetes"] = {**prod.config["kubernetes"], "namespace": self.NAMESPACE}
        gateway = prod.config["gateway"]
        # As a 0.1.0 stack was configured: the Ingress names a Secret the
        # caller makes (the platform then still uses it), and no setting
        # that release does not know.
        ingress = {k: v for k, v in gateway["ingress"].items() if k not in NEWER_INGRESS_KEYS}
        prod.config["gateway"] = {**gateway, **GATEWAY, "ingress": {**ingress, "host": self.HOST}}
        prod.config["sparkJobs"] = [j for j in prod.config.get("sparkJobs", []) if j["job"] in RELEASE_JOBS]
        prod.config["purgeOnDestroy"] = True
        prod.namespace = self.NAMESPACE
        prod.host = self.HOST
        images(prod)
        return dict(prod.config)

    def checkout_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return config

    def after_first_up(self) -> None:
        """The Secret the Ingress names, made as a 0.1.0 user made it: this
        run's certificate (the test trusts only it)."""
        prod = self.state
        # For this tier's host (the run's own certificate is for another).
        cert, key = certificate_paths(prod.tls_dir)
        subprocess.run(self_signed_command(prod.host, cert, key, days=2), check=True, capture_output=True)
        secret = prod.kube.run(
            "create",
            "secret",
            "tls",
            prod.tls_secret,
            "-n",
            prod.namespace,
            f"--cert={cert}",
            f"--key={key}",
            "--dry-run=client",
            "-o",
            "yaml",
        )
        prod.kube.run("apply", "-f", "-", stdin=secret)

    @contextlib.contextmanager
    def stores(self) -> Iterator[tuple[redis.Redis, Any]]:
        with self.state.redis_client() as client, self.state.s3() as s3:
            yield client, s3

    @contextlib.contextmanager
    def gateway(self) -> Iterator[Send]:
        prod = self.state

        def send(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
            return ingress(prod, method, path, body, headers)

        yield send

    def destroy(self) -> None:
        prod = self.state
        _, seconds = timed(prod.destroy)
        prod.report.add("destroy", f"{seconds:.1f} s")
        left = prod.kube.run("get", "namespace", prod.namespace, "--ignore-not-found", "-o", "name").strip()
        check(not left, f"{prod.namespace} left after destroy with purgeOnDestroy")
        prod.report.ok(f"destroy with purgeOnDestroy removed {prod.namespace} and its claims")

    def cleanup(self) -> None:
        prod = self.state
        if prod.stack is not None:
            with contextlib.suppress(auto.CommandError):
                prod.destroy()
        prod.kube.run(
            "delete",
            "namespace",
            prod.namespace,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=300s",
            check_rc=False,
        )


def make_tier(tier: str, stack: str, build: bool) -> Tier:
    return DevTier(stack, build) if tier == "dev" else ProdTier(stack, build)
