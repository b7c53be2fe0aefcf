"""A local path given to ``submit`` is uploaded to the stack's raw bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from jobs import uploads
from jobs.errors import JobError
from jobs.stack_outputs import StackTarget
from jobs.uploads import free_port

BUCKET = "raw-data"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        region_name="us-east-1",
    )


def dev_stack(endpoint: str) -> dict[str, Any]:
    return {"tier": "dev", "raw_bucket": BUCKET, "s3_endpoint": endpoint, "env": {}}


CREDENTIALS = {"s3_access_key": "AK", "s3_secret_key": "SK"}


def test_a_local_csv_is_uploaded_and_the_job_reads_the_copy(s3_endpoint: str, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("column1,column2\na,1\nb,2\n")
    argv = [str(data), "--column", "column1"]
    staged = uploads.stage_local_inputs("event_counts", argv, dev_stack(s3_endpoint), CREDENTIALS)
    assert staged[1:] == ["--column", "column1"]
    assert staged[0].startswith(f"s3a://{BUCKET}/uploads/")
    assert staged[0].endswith("/data.csv")
    key = staged[0].removeprefix(f"s3a://{BUCKET}/")
    body = client(s3_endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == data.read_bytes()
    # The same content lands at the same place; other content elsewhere.
    again = uploads.stage_local_inputs("event_counts", argv, dev_stack(s3_endpoint), CREDENTIALS)
    assert again == staged
    data.write_text("column1,column2\nc,3\n")
    changed = uploads.stage_local_inputs("event_counts", argv, dev_stack(s3_endpoint), CREDENTIALS)
    assert changed[0] != staged[0]


def test_a_directory_is_uploaded_whole_with_progress(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events"
    (events / "day=1").mkdir(parents=True)
    (events / "day=1" / "part-0.csv").write_bytes(b"x" * 300_000)
    (events / "part-1.csv").write_text("y")
    monkeypatch.setattr(uploads, "PROGRESS_MIN_BYTES", 100_000)
    printed: list[str] = []
    uris = uploads.upload_inputs(
        [str(events)],
        endpoint=s3_endpoint,
        bucket=BUCKET,
        access_key="AK",
        secret_key="SK",
        out=printed.append,
    )
    uri = uris[str(events)]
    assert uri.endswith("/events")
    prefix = uri.removeprefix(f"s3a://{BUCKET}/")
    listed = client(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")["Contents"]
    assert sorted(o["Key"].removeprefix(prefix + "/") for o in listed) == ["day=1/part-0.csv", "part-1.csv"]
    assert printed[0].startswith(f"uploading {events} (0.3 MiB)")
    assert printed[-1].endswith("(100%)")


def test_option_forms_are_rewritten() -> None:
    argv = ["--input", "/tmp/e", "--input-format", "csv", "--output-root=/tmp/e"]
    assert uploads.replace_argument(argv, "/tmp/e", "s3a://b/e") == [
        "--input",
        "s3a://b/e",
        "--input-format",
        "csv",
        "--output-root=s3a://b/e",
    ]


def test_store_uris_are_left_alone_and_missing_paths_named(tmp_path: Path) -> None:
    assert uploads.local_inputs("features", ["--input", "s3a://raw/events"]) == []
    assert uploads.local_inputs("datagen", []) == []
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(JobError, match="neither a local file or directory nor an s3a:// URI"):
        uploads.local_inputs("event_counts", [missing])


def test_local_outputs_are_refused_on_a_stack() -> None:
    with pytest.raises(JobError, match="--output /tmp/counts is a local path"):
        uploads.check_outputs("event_counts", ["s3a://raw/x.csv", "--output", "/tmp/counts"])
    with pytest.raises(JobError, match="--labels-output labels is a local path"):
        uploads.check_outputs("datagen", ["--labels-output", "labels"])
    uploads.check_outputs("event_counts", ["data.csv", "--output", "s3a://lake/counts"])


def test_ingest_lands_each_file_whole_under_a_name_of_its_own(s3_endpoint: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": 1}\n')
    target = StackTarget(dev_stack(s3_endpoint), CREDENTIALS, stack="dev")
    printed: list[str] = []
    first = uploads.ingest([str(events)], target, out=printed.append)
    second = uploads.ingest([str(events)], target, out=printed.append)
    assert first != second
    for uri in first + second:
        key = uri.removeprefix(f"s3a://{BUCKET}/")
        assert key.startswith("landing/")
        assert key.endswith("-events.jsonl")
        assert client(s3_endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read() == events.read_bytes()
    assert printed[0] == f"landed {events} as {first[0]}"
    with pytest.raises(JobError, match="not a file: "):
        uploads.ingest([str(tmp_path)], target)
