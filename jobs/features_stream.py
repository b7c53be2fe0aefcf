"""Landed event files to the events table and the online features, continuously.

A Structured Streaming query on the landing prefix (``--landing``, default
``s3a://<raw bucket>/landing``): each new file is read once, as JSON lines of
the events' columns (``event_id``, ``entity_id``, ``event_type``,
``event_time`` in ISO-8601). Every micro-batch then

1. moves each file that has a malformed line, a missing column, a value of
   the wrong type or an unknown event type to the quarantine prefix, whole,
   with ``<file>.reason.txt`` beside it saying why; the query goes on;
2. appends the other files' events to the events table in one Delta commit
   tagged with the stream's id and the batch id (``txnAppId``/``txnVersion``),
   so a batch replayed after a crash is not appended twice;
3. recomputes the features of every entity the batch touched, with
   ``features.compute_features`` over that entity's whole history in the
   table (the batch job's code, not a copy), and writes them into the online
   version that is live in Redis. An entity seen for the first time gets its
   features here too.

The reference time is the batch job's default: the latest event in the
table, which the stream carries forward. An entity's online features are
therefore exactly what the ``features`` job would compute for it as of the
reference of the batch that last touched it; entities the stream has not
touched since the reference moved keep their values until the next batch
run or event.

Progress is in the checkpoint (``--checkpoint``, default
``s3a://<lake bucket>/_checkpoints/features_stream``) and in Redis
(``features:stream``: the stream's id, its last batch and reference). A
batch Redis already holds is skipped, so a replay changes nothing. A restart
resumes from the checkpoint; a new checkpoint is a new stream.
"""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs import lake, online, storage
from jobs.config import Settings, check_redis
from jobs.errors import JobError
from jobs.features import compute_features, epoch_micros, latest_event_time
from jobs.schema import EVENT_SCHEMA, EVENT_TYPES, feature_names
from jobs.timeutil import iso_utc, version_now

STATE_KEY = online.KEY_PREFIX + "stream"
STREAM_ID_FILE = "stream-id"
REASON_SUFFIX = ".reason.txt"
CORRUPT = "_corrupt_record"
FILE = "_file"
PROBLEM = "_problem"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What a landed file's lines are read as: the events' columns, every one
# nullable (a file source makes them so), plus the text of a line that did
# not parse.
LANDING_SCHEMA = StructType(
    [StructField(f.name, f.dataType, nullable=True) for f in EVENT_SCHEMA.fields]
    + [StructField(CORRUPT, StringType(), nullable=True)]
)


@dataclass(frozen=True)
class StreamState:
    """What Redis holds of the stream: which stream, its last batch done,
    and the reference time (epoch microseconds) that batch used."""

    stream_id: str
    batch: int
    reference_us: int | None

    def encode(self) -> str:
        return json.dumps({"stream": self.stream_id, "batch": self.batch, "reference_us": self.reference_us})

    @classmethod
    def decode(cls, text: str | None, stream_id: str) -> StreamState:
        """The recorded state if it is this stream's, else a fresh one."""
        if text:
            recorded = json.loads(text)
            if recorded.get("stream") == stream_id:
                return cls(stream_id, int(recorded["batch"]), recorded.get("reference_us"))
        return cls(stream_id, -1, None)


def problem() -> Column:
    """Why a landed line cannot be taken, or null: the first reason found."""
    checks: list[tuple[Column, Column]] = [
        (
            F.col(CORRUPT).isNotNull(),
            F.concat(F.lit("not a JSON object of the event columns: "), F.substring(F.col(CORRUPT), 1, 200)),
        )
    ]
    checks += [
        (F.col(f.name).isNull(), F.lit(f"no value for {f.name} (expected {f.dataType.simpleString()})"))
        for f in EVENT_SCHEMA.fields
    ]
    checks.append(
        (
            ~F.col("event_type").isin(*EVENT_TYPES),
            F.concat(
                F.lit("unknown event_type "),
                F.col("event_type"),
                F.lit(f" (one of {', '.join(EVENT_TYPES)})"),
            ),
        )
    )
    verdict = F.when(checks[0][0], checks[0][1])
    for condition, reason in checks[1:]:
        verdict = verdict.when(condition, reason)
    return verdict


def file_verdicts(rows: DataFrame) -> dict[str, str | None]:
    """Each landed file of the batch and why it is refused (None: taken)."""
    judged = rows.withColumn(PROBLEM, problem())
    per_file = judged.groupBy(FILE).agg(F.first(PROBLEM, ignorenulls=True).alias(PROBLEM)).collect()
    return {str(row[FILE]): row[PROBLEM] for row in per_file}


def quarantine_path(quarantine: str, path: str) -> str:
    return storage.join(quarantine, path.rstrip("/").rsplit("/", 1)[-1])


@dataclass
class Stream:
    """One micro-batch's work (``process``), with what it needs."""

    spark: SparkSession
    events: str
    quarantine: str
    target: online.OnlineTarget
    stream_id: str

    def state(self) -> StreamState:
        client = online.connect(self.target)
        try:
            return StreamState.decode(online.text(client.get(STATE_KEY)), self.stream_id)
        finally:
            client.close()

    def record(self, state: StreamState) -> None:
        client = online.connect(self.target)
        try:
            client.set(STATE_KEY, state.encode())
        finally:
            client.close()

    def live_version(self) -> str:
        """The live online version; one named now when there is none yet."""
        client = online.connect(self.target)
        try:
            client.set(online.POINTER_KEY, version_now(), nx=True)
            live = online.text(client.get(online.POINTER_KEY))
        finally:
            client.close()
        if live is None:
            raise JobError("Redis lost the live version's pointer as it was set")
        return live

    def quarantine_files(self, refused: dict[str, str]) -> None:
        for path, reason in sorted(refused.items()):
            destination = quarantine_path(self.quarantine, path)
            note = f"{reason}\n".encode()
            storage.write_bytes(self.spark, destination + REASON_SUFFIX, note, overwrite=True)
            storage.move(self.spark, path, destination)
            print(f"quarantined {path}: {reason}", flush=True)

    def process(self, batch: DataFrame, batch_id: int) -> None:
        state = self.state()
        if batch_id <= state.batch:
            print(f"batch {batch_id}: done before (Redis holds batch {state.batch}); skipped", flush=True)
            return
        rows = batch.persist()
        try:
            self._process(rows, batch_id, state)
        finally:
            rows.unpersist()

    def _process(self, rows: DataFrame, batch_id: int, state: StreamState) -> None:
        verdicts = file_verdicts(rows)
        refused = {path: reason for path, reason in verdicts.items() if reason is not None}
        self.quarantine_files(refused)
        taken = sorted(path for path, reason in verdicts.items() if reason is None)
        good = rows.where(F.col(FILE).isin(*taken)).select(
            *(F.col(f.name).cast(f.dataType) for f in EVENT_SCHEMA.fields)
        )
        reference_us = state.reference_us
        touched = 0
        if taken:
            # Delta skips a commit whose (app id, version) it already holds.
            writer = (
                good.write.format(lake.FORMAT)
                .mode("append")
                .option("txnAppId", self.stream_id)
                .option("txnVersion", batch_id)
                .option("userMetadata", f"stream {self.stream_id} batch {batch_id}")
            )
            with lake.delta_errors(self.events):
                writer.save(self.events)
            reference_us = self.reference(good, reference_us)
            touched = self.update_online(good, reference_us)
        self.record(StreamState(self.stream_id, batch_id, reference_us))
        reference = "none" if reference_us is None else iso_utc(_EPOCH + timedelta(microseconds=reference_us))
        print(
            f"batch {batch_id}: {len(taken)} file(s) appended, {len(refused)} quarantined, "
            f"{touched} entities updated as of {reference}",
            flush=True,
        )

    def reference(self, good: DataFrame, known_us: int | None) -> int:
        """The latest event in the table: carried forward, or read once."""
        if known_us is None:
            return epoch_micros(latest_event_time(lake.read(self.spark, self.events, EVENT_SCHEMA)))
        row = good.agg(F.max(F.unix_micros(F.col("event_time")))).first()
        latest = row[0] if row is not None else None
        return known_us if latest is None else max(known_us, int(latest))

    def update_online(self, good: DataFrame, reference_us: int) -> int:
        """The touched entities' features over their whole history, into the live version."""
        touched = good.select("entity_id").distinct()
        events = lake.read(self.spark, self.events, EVENT_SCHEMA)
        history = events.join(F.broadcast(touched), "entity_id", "left_semi")
        reference = _EPOCH + timedelta(microseconds=reference_us)
        features = compute_features(history, reference)
        return online.write_features(features, self.target, feature_names(), self.live_version())


def stream_id(spark: SparkSession, checkpoint: str) -> str:
    """The id this checkpoint's stream tags its commits with: kept beside
    the checkpoint, so a restart keeps it and a new checkpoint gets a new one."""
    where = storage.join(checkpoint, STREAM_ID_FILE)
    recorded = storage.read_text(spark, where)
    if recorded and recorded.strip():
        return recorded.strip()
    created = f"features_stream-{uuid.uuid4()}"
    storage.write_bytes(spark, where, created.encode())
    return created


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    if args.trigger_seconds <= 0:
        raise JobError("--trigger-seconds must be positive")
    landing = args.landing or settings.bucket_uri(settings.buckets.raw, "landing")
    quarantine = args.quarantine or settings.bucket_uri(settings.buckets.raw, "quarantine")
    events = args.events or settings.bucket_uri(settings.buckets.raw, "events")
    checkpoint = args.checkpoint or settings.bucket_uri(
        settings.buckets.lake, "_checkpoints", "features_stream"
    )
    redis_settings = settings.require_redis()
    check_redis(redis_settings)
    target = online.OnlineTarget.from_settings(redis_settings, args.ttl_seconds, args.batch_commands)
    if lake.is_table(spark, events):
        # Fails naming the first column the table lacks or holds otherwise.
        lake.read(spark, events, EVENT_SCHEMA)
    # A micro-batch is small, and Spark runs it without adaptive execution,
    # which would otherwise merge the default 200 shuffle partitions: two
    # per core the stream may have.
    conf = spark.sparkContext.getConf()
    cores = int(conf.get("spark.dynamicAllocation.maxExecutors", "1")) * int(
        conf.get("spark.executor.cores", "1")
    )
    spark.conf.set("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
    # Spark's file source refuses a directory that does not exist yet; on a
    # new stack nothing has landed.
    storage.make_directory(spark, landing)
    # A replayed batch whose refused file was already moved to quarantine
    # reads it as gone, not as an error.
    spark.conf.set("spark.sql.files.ignoreMissingFiles", "true")
    stream = Stream(spark, events, quarantine, target, stream_id(spark, checkpoint))

    source: Any = (
        spark.readStream.schema(LANDING_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("maxFilesPerTrigger", args.max_files_per_trigger)
        .json(landing)
        .withColumn(FILE, F.col("_metadata.file_path"))
    )
    writer = source.writeStream.queryName("features_stream").option("checkpointLocation", checkpoint)
    writer = writer.foreachBatch(stream.process)
    if args.once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{args.trigger_seconds} seconds")
    print(
        f"streaming {landing} into {events} and Redis (stream {stream.stream_id}, "
        f"checkpoint {checkpoint}, quarantine {quarantine})",
        flush=True,
    )
    query = writer.start()
    query.awaitTermination()
