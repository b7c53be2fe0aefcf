"""The steps a preview plans, as the engine reports them, and what an upgrade may not do."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from pulumi.automation import EngineEvent, OpType

# What holds data or identity: a replacement or deletion of one of these
# loses data (volumes, claims, the namespace that holds the claims) or
# changes credentials every client holds (generated passwords).
STATEFUL_TYPES = frozenset(
    {
        "docker:index/volume:Volume",
        "kubernetes:core/v1:PersistentVolumeClaim",
        "kubernetes:core/v1:Namespace",
        "random:index/randomPassword:RandomPassword",
    }
)
# Steps that remove a resource or put a new one in its place.
DESTRUCTIVE_OPS = frozenset(
    {
        OpType.DELETE,
        OpType.REPLACE,
        OpType.CREATE_REPLACEMENT,
        OpType.DELETE_REPLACED,
        OpType.DISCARD,
        OpType.DISCARD_REPLACED,
        OpType.IMPORT_REPLACEMENT,
        OpType.READ_REPLACEMENT,
    }
)


# What moved, by design, into the jobs namespace after 0.1.0 (Spark jobs
# apart from the services' Secrets): re-created there and removed from the
# platform's namespace, the Spark Operator chart's roles for the namespace
# it watches among them. None of it holds data.
RELOCATED = frozenset(
    {
        ("kubernetes:rbac.authorization.k8s.io/v1:Role", "spark-operator-controller"),
        ("kubernetes:rbac.authorization.k8s.io/v1:Role", "spark-operator-webhook"),
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "spark-operator-controller"),
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "spark-operator-webhook"),
        ("kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication", "features-nightly"),
        ("kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication", "train-nightly"),
        ("kubernetes:core/v1:Secret", "spark-credentials"),
        ("kubernetes:core/v1:ServiceAccount", "spark-driver"),
        ("kubernetes:rbac.authorization.k8s.io/v1:Role", "spark-driver"),
        ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "spark-driver"),
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "spark-pods"),
    }
)


# MinIO's one-shot setup when the platform gains a MinIO user after 0.1.0
# (the History Server's): its Job runs again to add the user, with new
# files to read. It holds no data: buckets, objects and the other users'
# keys stay.
RERUN = frozenset(
    {
        ("kubernetes:batch/v1:Job", "minio-init"),
        ("kubernetes:core/v1:ConfigMap", "minio-init-files-0"),
        ("kubernetes:core/v1:Secret", "minio-init-files-1"),
        ("docker:index/container:Container", "minio-init"),
        ("docker:index/container:Container", "minio-init-files"),
    }
)


def _named(step_type: str, step_name: str, kinds: frozenset[tuple[str, str]]) -> bool:
    """One of ``kinds`` by type and name: bare (0.1.0), after ``<platform>-``,
    or a chart's object after ``<release>:<namespace>/``."""
    base = step_name.rsplit("/", 1)[-1]
    return any(step_type == kind and (base == name or base.endswith(f"-{name}")) for kind, name in kinds)


@dataclass(frozen=True)
class Step:
    op: OpType
    urn: str
    type: str
    old_urn: str | None
    reasons: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def relocated(self) -> bool:
        """One of the objects that moved to the jobs namespace."""
        return _named(self.type, self.name, RELOCATED)

    @property
    def rerun(self) -> bool:
        """MinIO's setup, run again for a user added since 0.1.0."""
        return _named(self.type, self.name, RERUN)

    @property
    def renamed(self) -> bool:
        """Kept under a new URN through an alias."""
        return self.old_urn is not None and self.old_urn != self.urn

    def describe(self) -> str:
        why = f" (because of {', '.join(self.reasons)})" if self.reasons else ""
        old = f" [was {self.old_urn.rsplit('::', 1)[-1]}]" if self.renamed and self.old_urn else ""
        return f"{self.op.value} {self.type} {self.name}{old}{why}"


@dataclass
class Plan:
    """Every step of one preview, collected from the engine's events."""

    steps: list[Step] = field(default_factory=list)

    def on_event(self, event: EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is None:
            return
        meta = pre.metadata
        old_urn = meta.old.urn if meta.old is not None else None
        reasons = tuple(meta.keys or ()) or tuple(meta.diffs or ())
        self.steps.append(Step(meta.op, meta.urn, meta.type, old_urn, reasons))

    def counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(s.op.value for s in self.steps).items()))

    def of(self, *ops: OpType) -> list[Step]:
        return [s for s in self.steps if s.op in ops]

    def destructive(self) -> list[Step]:
        """Steps that remove or replace something, but for what moved to
        the jobs namespace (``relocated``)."""
        return [s for s in self.steps if s.op in DESTRUCTIVE_OPS and not (s.relocated or s.rerun)]

    def relocations(self) -> list[Step]:
        return [s for s in self.steps if s.op in DESTRUCTIVE_OPS and s.relocated]

    def reruns(self) -> list[Step]:
        return [s for s in self.steps if s.op in DESTRUCTIVE_OPS and s.rerun]

    def stateful_touched(self) -> list[Step]:
        return [s for s in self.destructive() if s.type in STATEFUL_TYPES]

    def renamed(self) -> list[Step]:
        return [s for s in self.steps if s.renamed]

    def summary(self) -> str:
        return ", ".join(f"{op} {n}" for op, n in self.counts().items())
