"""Features + labels to a logistic regression published in the model registry.

Registry layout (contract "Model registry"), under ``--registry`` (default
``s3a://<models bucket>``)::

    <name>/<version>/model.onnx
    <name>/<version>/metadata.json
    <name>/LATEST                   written last

The files go through the session's Hadoop FileSystem, so the job uses the one
S3A configuration it already has instead of a second client with its own
settings. Each object becomes visible in full when its stream closes, and
``LATEST`` moves only after both files of a version exist, so a server polling
the registry never loads a half-written version. A model whose held-out AUC is
below ``--min-auc`` is not published.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import lake, onnx_export, storage
from jobs.config import Settings
from jobs.definitions import keywords
from jobs.errors import JobError
from jobs.schema import LABEL_SCHEMA, feature_names, features_schema
from jobs.sources import input_errors, read_table
from jobs.timeutil import VERSION_FORMAT, iso_utc, version_now

VECTOR_COLUMN = "features_vector"


@dataclass(frozen=True)
class TrainingResult:
    model: LogisticRegressionModel
    auc: float
    area_under_pr: float
    train_rows: int
    test_rows: int
    test_predictions: DataFrame


def training_frame(features: DataFrame, labels: DataFrame) -> DataFrame:
    missing = [n for n in feature_names() if n not in features.columns]
    if missing:
        raise JobError(f"features lack columns {missing}")
    return features.join(labels, on="entity_id", how="inner").select(
        "entity_id", *feature_names(), F.col("label").cast("double").alias("label")
    )


def fit(
    data: DataFrame, *, test_fraction: float, seed: int, reg_param: float, max_iter: int
) -> TrainingResult:
    assembler = VectorAssembler(inputCols=feature_names(), outputCol=VECTOR_COLUMN)
    assembled = assembler.transform(data).select("entity_id", VECTOR_COLUMN, "label")
    train, test = assembled.randomSplit([1.0 - test_fraction, test_fraction], seed=seed)
    train = train.cache()
    test = test.cache()
    train_rows, test_rows = train.count(), test.count()
    if train_rows == 0 or test_rows == 0:
        raise JobError(f"not enough labelled entities to train and evaluate ({train_rows + test_rows})")
    # Standardization happens inside the optimizer; the coefficients come back
    # on the original feature scale, so the exported graph needs no scaler.
    estimator = LogisticRegression(
        featuresCol=VECTOR_COLUMN,
        labelCol="label",
        maxIter=max_iter,
        regParam=reg_param,
        standardization=True,
        family="binomial",
    )
    model = estimator.fit(train)
    predictions = model.transform(test)
    evaluator = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol="rawPrediction")
    auc = evaluator.evaluate(predictions, {evaluator.metricName: "areaUnderROC"})
    area_under_pr = evaluator.evaluate(predictions, {evaluator.metricName: "areaUnderPR"})
    train.unpersist()
    return TrainingResult(model, auc, area_under_pr, train_rows, test_rows, predictions)


def metadata(
    *,
    name: str,
    version: str,
    result: TrainingResult,
    features_source: str,
    labels_source: str,
    created_at: datetime,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "feature_names": feature_names(),
        "input_name": onnx_export.INPUT_NAME,
        "output_name": onnx_export.OUTPUT_NAME,
        "metrics": {"auc": result.auc, "area_under_pr": result.area_under_pr},
        "created_at": iso_utc(created_at),
        "training": {
            "algorithm": "spark.ml LogisticRegression",
            "features": features_source,
            "labels": labels_source,
            "train_rows": result.train_rows,
            "test_rows": result.test_rows,
        },
    }


def publish(
    spark: SparkSession, registry: str, name: str, version: str, model_bytes: bytes, meta: dict[str, Any]
) -> str:
    """Upload a version, then point LATEST at it; returns the version's URI."""
    version_dir = storage.join(registry, name, version)
    if storage.exists(spark, version_dir):
        raise JobError(f"model version {version_dir} already exists")
    storage.write_bytes(spark, storage.join(version_dir, "model.onnx"), model_bytes)
    document = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    storage.write_bytes(spark, storage.join(version_dir, "metadata.json"), document.encode())
    storage.write_bytes(spark, storage.join(registry, name, "LATEST"), version.encode(), overwrite=True)
    return version_dir


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> None:
    if not 0.0 < args.test_fraction < 1.0:
        raise JobError("--test-fraction must be between 0 and 1")
    table = args.features or settings.bucket_uri(settings.buckets.lake, "features")
    labels_path = args.labels or settings.bucket_uri(settings.buckets.raw, "labels")
    registry = args.registry or settings.bucket_uri(settings.buckets.models)
    version = args.version or version_now()
    try:
        datetime.strptime(version, VERSION_FORMAT)
    except ValueError as exc:
        raise JobError(f"version {version!r} must look like YYYYMMDDTHHMMSSZ") from exc

    if not lake.is_table(spark, table):
        raise JobError(f"no features published at {table} (run the features job first)")
    features = lake.read(spark, table, features_schema(), args.as_of)
    # The version actually read, so the model names the rows it learnt from.
    features_version = lake.resolved_version(spark, table, args.as_of)
    labels = read_table(spark, labels_path, args.labels_format, LABEL_SCHEMA)
    data = training_frame(features, labels)
    with input_errors(labels_path, LABEL_SCHEMA):
        result = fit(data, **keywords(args, "test_fraction", "seed", "reg_param", "max_iter"))
    print(
        f"held-out AUC {result.auc:.4f} (PR {result.area_under_pr:.4f}) "
        f"on {result.test_rows:,} entities; trained on {result.train_rows:,}"
    )
    if result.auc < args.min_auc:
        raise JobError(f"AUC {result.auc:.4f} is below --min-auc {args.min_auc}; not published")

    onnx_model = onnx_export.logistic_regression_model(
        result.model.coefficients.toArray().tolist(),
        float(result.model.intercept),
        feature_names=feature_names(),
        model_name=args.name,
        version=version,
    )
    meta = metadata(
        name=args.name,
        version=version,
        result=result,
        features_source=f"{table}@v{features_version}",
        labels_source=labels_path,
        created_at=datetime.now(UTC),
    )
    location = publish(spark, registry, args.name, version, onnx_model.SerializeToString(), meta)
    print(f"published {args.name} {version} to {location}; LATEST updated")
