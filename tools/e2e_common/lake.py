"""The lake's Delta tables as a reader outside Spark sees them: delta-rs,
straight from MinIO."""

from __future__ import annotations

from typing import Any

from deltalake import DeltaTable, QueryBuilder

from tools.e2e_common.report import Report, check


def table(endpoint: str, credentials: dict[str, str], uri: str) -> DeltaTable:
    """``uri`` (``s3://bucket/path``) through MinIO's S3 API at ``endpoint``."""
    return DeltaTable(
        uri,
        storage_options={
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": credentials["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": credentials["s3_secret_key"],
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true" if endpoint.startswith("http://") else "false",
        },
    )


def scalar(dt: DeltaTable, sql: str) -> Any:
    """The one value a query over the table (as ``t``) returns."""
    result = QueryBuilder().register("t", dt).execute(sql).read_all()
    return result[result.column_names[0]][0].as_py()


def check_tables(endpoint: str, credentials: dict[str, str], buckets: dict[str, str], report: Report) -> None:
    """The pipeline's tables, read with delta-rs: the events datagen
    committed, and the features committed from them, one row per entity."""
    events = table(endpoint, credentials, f"s3://{buckets['raw']}/events")
    features = table(endpoint, credentials, f"s3://{buckets['lake']}/features")
    rows = scalar(events, "SELECT count(*) FROM t")
    entities = scalar(events, "SELECT count(DISTINCT entity_id) FROM t")
    feature_rows = scalar(features, "SELECT count(*) FROM t")
    check(rows > 0, "delta-rs reads no events")
    check(
        feature_rows == entities,
        f"delta-rs reads {feature_rows} feature rows for {entities} entities in the events",
    )
    (latest,) = features.history(1)
    check(
        str(latest.get("userMetadata", "")).startswith("run "),
        f"the features table's last commit is not a features run: {latest}",
    )
    report.add(
        "lake, read with delta-rs",
        f"events v{events.version()}: {rows:,} rows; features v{features.version()}: {feature_rows:,} rows",
    )
    report.ok("the lake's tables read with delta-rs from MinIO: one feature row per entity of the events")


def data_files(s3: Any, bucket: str, path: str) -> set[str]:
    """The keys of every data file under the table ``path``, committed or not."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{path}/")
    return {o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".parquet")}


def committed_files(dt: DeltaTable, bucket: str) -> set[str]:
    """The keys of the data files the table's current version refers to."""
    return {uri.split(f"s3://{bucket}/", 1)[1] for uri in dt.file_uris()}
