"""The streaming job, live on either tier: files landed while its driver is
killed are counted once, and the batch job agrees with what it wrote.

Every landed event falls inside the span ``datagen`` wrote, so the latest
event, which both jobs take as their reference time, stays where datagen
put it: the batch run's values are then comparable to the stream's for
every entity the stream touched, not only for those of its last batch.
"""

from __future__ import annotations

import collections
import json
import random
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from tools.e2e_common import lake
from tools.e2e_common.jobs_cli import jobs_cli_command
from tools.e2e_common.report import Report, check, wait_for
from tools.repo import ROOT

# datagen's default span, which the pipeline keeps.
SPAN_START = datetime(2025, 1, 1, tzinfo=UTC)
# Landed events stay a day short of its end: datagen's latest event, the
# reference of both jobs, is later than any of them.
LANDED_SPAN_SECONDS = 29 * 86_400
EVENT_TYPES = ("login", "page_view", "purchase", "support_ticket", "payment_failed")
STATE_KEY = "features:stream"
POINTER_KEY = "features:current"
LANDING = "landing"
# Far above datagen's ids, so a landed event is never taken for one of its.
FIRST_EVENT_ID = 10**12
COUNTED = ("events_total", *(f"count_{t}" for t in EVENT_TYPES))


def text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def event_lines(events: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


@dataclass
class Landed:
    """Events this run landed, counted per entity and type independently of
    the platform."""

    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    files: int = 0
    next_id: int = FIRST_EVENT_ID

    def events(self, rng: random.Random, entities: list[str], count: int) -> list[dict[str, Any]]:
        made = []
        for _ in range(count):
            entity, kind = rng.choice(entities), rng.choice(EVENT_TYPES)
            at = SPAN_START + timedelta(seconds=rng.randrange(LANDED_SPAN_SECONDS))
            made.append(
                {
                    "event_id": self.next_id,
                    "entity_id": entity,
                    "event_type": kind,
                    "event_time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            self.counts[(entity, kind)] += 1
            self.next_id += 1
        return made

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def entities(self) -> set[str]:
        return {entity for entity, _ in self.counts}


@dataclass
class StreamStores:
    """What the checks read and write: the raw bucket through S3, the events
    table through delta-rs, Redis as its admin."""

    s3: Any
    endpoint: str
    credentials: dict[str, str]
    raw_bucket: str
    redis: redis.Redis
    report: Report
    log: Callable[[str], None]

    def land(self, name: str, body: bytes) -> str:
        key = f"{LANDING}/{name}"
        self.s3.put_object(Bucket=self.raw_bucket, Key=key, Body=body)
        return key

    def events(self) -> lake.DeltaTable:
        return lake.table(self.endpoint, self.credentials, f"s3://{self.raw_bucket}/events")

    def rows(self) -> int:
        return int(lake.scalar(self.events(), "SELECT count(*) FROM t"))

    def counts(self, entities: set[str]) -> collections.Counter[tuple[str, str]]:
        """Events per (entity, type) in the table, for ``entities``."""
        listed = ", ".join(f"'{e}'" for e in sorted(entities))
        sql = (
            f"SELECT entity_id, event_type, count(*) AS n FROM t WHERE entity_id IN ({listed}) GROUP BY 1, 2"
        )
        found = lake.QueryBuilder().register("t", self.events()).execute(sql).read_all()
        columns = [found[name] for name in ("entity_id", "event_type", "n")]
        rows = ([column[i].as_py() for column in columns] for i in range(found.num_rows))
        return collections.Counter({(entity, kind): int(n) for entity, kind, n in rows})

    def state(self) -> dict[str, Any]:
        found = text(self.redis.get(STATE_KEY))
        return json.loads(found) if found else {}

    def online(self, entities: Iterable[str], version: str | None = None) -> dict[str, dict[str, float]]:
        live = version or text(self.redis.get(POINTER_KEY))
        pipe = self.redis.pipeline(transaction=False)
        names = sorted(entities)
        for entity in names:
            pipe.hgetall(f"features:v:{live}:{entity}")
        return {
            entity: {text(k) or "": float(text(v) or "nan") for k, v in values.items()}
            for entity, values in zip(names, pipe.execute(), strict=True)
        }

    def stream_commits(self) -> list[int]:
        """The batch ids of the stream's commits to the events table, oldest first."""
        batches = []
        for entry in reversed(self.events().history()):
            meta = str(entry.get("userMetadata") or "")
            if meta.startswith("stream "):
                batches.append(int(meta.rsplit(" ", 1)[1]))
        return batches


def expected_counts(
    before: collections.Counter[tuple[str, str]], landed: Landed
) -> dict[str, dict[str, float]]:
    """events_total and count_<type> per touched entity: what the table held
    before, plus what this run landed."""
    result: dict[str, dict[str, float]] = {}
    for entity in landed.entities():
        per_type = {t: before[(entity, t)] + landed.counts[(entity, t)] for t in EVENT_TYPES}
        result[entity] = {"events_total": float(sum(per_type.values()))}
        result[entity] |= {f"count_{t}": float(n) for t, n in per_type.items()}
    return result


def entities_for(rng: random.Random, known: int, run: str) -> list[str]:
    """Entities of datagen's (its ``u%08d`` ids) and new ones of this run."""
    return [f"u{i:08d}" for i in rng.sample(range(known), 150)] + [f"n{run}-{i}" for i in range(15)]


def killed_while_landing(
    stores: StreamStores,
    kill: Callable[[], None],
    restarted: Callable[[], bool],
    *,
    known_entities: int,
    per_file: int = 200,
    interval: float = 1.0,
    after_kill: int = 10,
    most: int = 200,
) -> Landed:
    """Files land one a second; once the stream has taken a batch of them,
    its driver is killed, and ``after_kill`` more land. After the restart
    every event is in the table once and every touched entity's online
    counts are the table's before plus what landed, computed here. Returns
    what was landed."""
    rng = random.Random(23)
    run = time.strftime("%H%M%S")
    entities = entities_for(rng, known_entities, run)
    rows_before = stores.rows()
    before = stores.counts(set(entities))
    commits_before = stores.stream_commits()
    landed = Landed()
    killed = threading.Event()
    done = threading.Event()
    failed: list[BaseException] = []

    def landing() -> None:
        try:
            remaining = after_kill
            while landed.files < most and remaining > 0:
                body = event_lines(landed.events(rng, entities, per_file))
                stores.land(f"e2e-{run}-{landed.files:03d}.jsonl", body)
                landed.files += 1
                if killed.is_set():
                    remaining -= 1
                time.sleep(interval)
        except BaseException as exc:
            failed.append(exc)
        finally:
            done.set()

    lander = threading.Thread(target=landing, daemon=True)
    start_state = stores.state()
    lander.start()
    first = wait_for(
        "the stream's first batch of this run",
        lambda: (s := stores.state()) and s != start_state and s,
        timeout=180,
        interval=0.5,
    )
    check(not done.is_set(), f"landing stopped before the kill: {failed}")
    landed_at_kill = landed.files
    kill()
    killed.set()
    killed_at = time.monotonic()
    wait_for("the stream's driver back after the kill", restarted, timeout=240, interval=1.0)
    back = time.monotonic() - killed_at
    lander.join(timeout=after_kill * interval + 60)
    check(done.is_set() and not failed, f"the landing did not finish: {failed}")
    expected_rows = rows_before + landed.total
    wait_for(
        f"{landed.total} landed events in the events table",
        lambda: stores.rows() >= expected_rows,
        timeout=300,
        interval=2.0,
        state=lambda: f"{stores.rows() - rows_before} of {landed.total} in the table",
    )
    # A replayed batch's second commit would show up now, not before.
    time.sleep(3)
    rows = stores.rows()
    check(rows == expected_rows, f"the table holds {rows - rows_before} of the {landed.total} landed events")
    after_counts = stores.counts(landed.entities())
    wanted = expected_counts(before, landed)
    table_counts = {
        e: {"events_total": float(sum(after_counts[(e, t)] for t in EVENT_TYPES))}
        | {f"count_{t}": float(after_counts[(e, t)]) for t in EVENT_TYPES}
        for e in landed.entities()
    }
    check(table_counts == wanted, "the table's counts per entity differ from what was landed")
    # Redis is written after the commit: wait for the last batch's record.
    last = stores.stream_commits()[-1]
    state = wait_for(
        f"the stream's online update of batch {last}",
        lambda: (s := stores.state()).get("batch", -1) >= last and s,
        timeout=120,
        interval=0.5,
    )
    online = stores.online(landed.entities())
    wrong = {
        e: {k: (online.get(e, {}).get(k), v) for k, v in values.items() if online.get(e, {}).get(k) != v}
        for e, values in wanted.items()
    }
    wrong = {e: diff for e, diff in wrong.items() if diff}
    check(
        not wrong,
        f"{len(wrong)} entities' online counts differ (online, expected): {dict(list(wrong.items())[:3])}",
    )
    commits = stores.stream_commits()[len(commits_before) :]
    check(len(commits) == len(set(commits)), f"a batch was committed twice: {commits}")
    check(
        state["stream"] == first["stream"]
        and state["batch"] > first["batch"]
        and commits[-1] > first["batch"],
        f"the restarted stream did not resume from its checkpoint: {first} then {state}, commits {commits}",
    )
    stores.report.add("stream: driver back after the kill", f"{back:.1f} s")
    stores.report.ok(
        f"stream killed after batch {first['batch']} with {landed_at_kill} of {landed.files} files landed: "
        f"resumed from its checkpoint (batches {commits[0]}..{commits[-1]}, none twice); all {landed.total} "
        f"events in the table once; {len(wanted)} entities' online counts as computed here"
    )
    return landed


def batch_agrees(stores: StreamStores, landed: Landed, run_features: Callable[[], str]) -> float:
    """The batch ``features`` job over the same events gives every entity the
    stream touched the values the stream wrote. ``run_features`` runs it and
    returns its output. Returns the batch run's seconds."""
    entities = landed.entities()
    streamed_in = text(stores.redis.get(POINTER_KEY))
    streamed = stores.online(entities, streamed_in)
    reference_us = stores.state()["reference_us"]
    started = time.monotonic()
    output = run_features()
    seconds = time.monotonic() - started
    reference = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=reference_us)).isoformat()
    check(
        f"features as of {reference.replace('+00:00', 'Z')}" in output,
        f"the batch run's reference time is not the stream's ({reference}):\n{output[-1500:]}",
    )
    batch_version = text(stores.redis.get(POINTER_KEY))
    check(batch_version != streamed_in, "the batch run made no new online version live")
    batch = stores.online(entities, batch_version)
    differ = {e for e in entities if streamed.get(e) != batch.get(e) or not batch.get(e)}
    check(not differ, f"{len(differ)} entities differ between stream and batch, e.g. {sorted(differ)[:3]}")
    stores.report.ok(
        f"batch features over the same {landed.total} streamed events: all {len(entities)} touched entities' "
        f"{len(next(iter(batch.values())))} online values equal the stream's"
    )
    return seconds


def refused_file_quarantined(stores: StreamStores, stack: str, running_on: Callable[[], bool]) -> None:
    """A file of other columns, landed with ``python -m jobs ingest`` as a
    user does: moved to quarantine whole, its reason beside it, while the
    stream's driver runs on (``running_on``: not restarted)."""
    with tempfile.TemporaryDirectory() as directory:
        bad = Path(directory) / "wrong-columns.jsonl"
        bad.write_text('{"user": "u00000001", "action": "login"}\n')
        completed = subprocess.run(
            jobs_cli_command("ingest", "--stack", stack, "--project-dir", str(ROOT), str(bad)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    check(completed.returncode == 0, f"jobs ingest failed:\n{completed.stdout}{completed.stderr}")
    uri = completed.stdout.strip().splitlines()[-1].rsplit(" as ", 1)[1]
    key = uri.split("/", 3)[3]
    check(key.startswith(f"{LANDING}/"), f"jobs ingest landed it at {uri}")
    name = key.rsplit("/", 1)[1]
    bucket = stores.raw_bucket

    def reason() -> str:
        body = stores.s3.get_object(Bucket=bucket, Key=f"quarantine/{name}.reason.txt")["Body"].read()
        return str(body.decode())

    def moved() -> bool:
        # The reason is written first, then the file moved (a copy, then a
        # delete on S3): wait for the whole of it.
        stores.s3.head_object(Bucket=bucket, Key=f"quarantine/{name}")
        return stores.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) == 0

    found = wait_for("the refused file's reason in quarantine", reason, timeout=120, interval=1.0)
    check(found.startswith("no value for event_id"), f"quarantine reason: {found!r}")
    wait_for(f"{key} moved to quarantine", moved, timeout=60, interval=0.5)
    check(running_on(), "the stream's driver did not keep running after refusing a file")
    stores.report.ok(
        f"a file of other columns, landed with jobs ingest: quarantined with its reason "
        f"({found.strip()}); the stream ran on"
    )
