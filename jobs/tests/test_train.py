from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import lake, onnx_export, storage, train
from jobs.errors import JobError
from jobs.schema import LABEL_SCHEMA, feature_names, features_schema
from jobs.tests.conftest import Dataset, run_job

VERSION = "20250401T000000Z"


@pytest.fixture(scope="module")
def features_root(spark: SparkSession, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("lake") / "features")
    run_job(
        spark,
        "features",
        ["--input", dataset.events, "--output", root, "--no-online", "--version", "20250331T000000Z"],
    )
    return root


@pytest.fixture(scope="module")
def trained(spark: SparkSession, dataset: Dataset, features_root: str) -> train.TrainingResult:
    labels = lake.read(spark, dataset.labels, LABEL_SCHEMA)
    data = train.training_frame(lake.read(spark, features_root, features_schema()), labels)
    return train.fit(data, test_fraction=0.25, seed=3, reg_param=0.001, max_iter=100)


def run_train(spark: SparkSession, features_root: str, labels: str, registry: Path, *extra: str) -> None:
    argv = ["--features", features_root, "--labels", labels, "--registry", str(registry), *extra]
    run_job(spark, "train", argv)


def test_model_learns_the_hidden_propensity(trained: train.TrainingResult) -> None:
    assert trained.auc > 0.8
    assert trained.train_rows + trained.test_rows == 1_500


def test_onnx_scores_equal_spark_probabilities(trained: train.TrainingResult) -> None:
    model = onnx_export.logistic_regression_model(
        trained.model.coefficients.toArray().tolist(),
        trained.model.intercept,
        feature_names=feature_names(),
        model_name="churn",
        version=VERSION,
    )
    rows = trained.test_predictions.select(
        vector_to_array(F.col(train.VECTOR_COLUMN)).alias("x"),
        vector_to_array(F.col("probability")).getItem(1).alias("p"),
    ).collect()
    inputs = np.array([r["x"] for r in rows], dtype=np.float64)
    spark_scores = np.array([r["p"] for r in rows], dtype=np.float64)

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (input_meta,) = session.get_inputs()
    (output_meta,) = session.get_outputs()
    assert (input_meta.name, input_meta.type, input_meta.shape) == (
        "features",
        "tensor(double)",
        ["N", len(feature_names())],
    )
    assert (output_meta.name, output_meta.type, output_meta.shape) == ("score", "tensor(double)", ["N"])
    (scores,) = session.run(["score"], {"features": inputs})
    assert scores.shape == (len(rows),)
    np.testing.assert_allclose(scores, spark_scores, rtol=0, atol=1e-6)


def test_job_publishes_to_the_registry(
    spark: SparkSession,
    dataset: Dataset,
    features_root: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = tmp_path / "models"
    run_train(spark, features_root, dataset.labels, registry, "--version", VERSION)
    assert (registry / "churn" / "LATEST").read_text() == VERSION
    meta = json.loads((registry / "churn" / VERSION / "metadata.json").read_text())
    assert meta["name"] == "churn"
    assert meta["version"] == VERSION
    assert meta["feature_names"] == feature_names()
    assert (meta["input_name"], meta["output_name"]) == ("features", "score")
    assert meta["metrics"]["auc"] > 0.8
    assert meta["created_at"].endswith("Z")
    assert meta["training"]["features"] == f"{features_root}@v0"
    model = onnx.load(str(registry / "churn" / VERSION / "model.onnx"))
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add", "Sigmoid"]
    assert f"held-out AUC {meta['metrics']['auc']:.4f}" in capsys.readouterr().out

    with pytest.raises(JobError, match="already exists"):
        run_train(spark, features_root, dataset.labels, registry, "--version", VERSION)


def test_latest_is_written_last(spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = str(tmp_path / "models")
    storage.write_bytes(spark, f"{registry}/churn/LATEST", b"20240101T000000Z")
    writes: list[str] = []
    real_write = storage.write_bytes

    def recording_write(session: SparkSession, uri: str, data: bytes, *, overwrite: bool = False) -> None:
        writes.append(uri.rsplit("/", 1)[1])
        real_write(session, uri, data, overwrite=overwrite)

    monkeypatch.setattr(storage, "write_bytes", recording_write)
    train.publish(spark, registry, "churn", VERSION, b"model", {"name": "churn"})
    assert writes == ["model.onnx", "metadata.json", "LATEST"]

    def failing_write(session: SparkSession, uri: str, data: bytes, *, overwrite: bool = False) -> None:
        if uri.endswith("metadata.json"):
            raise JobError("disk full")
        real_write(session, uri, data, overwrite=overwrite)

    monkeypatch.setattr(storage, "write_bytes", failing_write)
    with pytest.raises(JobError, match="disk full"):
        train.publish(spark, registry, "churn", "20250402T000000Z", b"model", {"name": "churn"})
    assert storage.read_text(spark, f"{registry}/churn/LATEST") == VERSION


def test_weak_model_is_not_published(
    spark: SparkSession, dataset: Dataset, features_root: str, tmp_path: Path
) -> None:
    registry = tmp_path / "models"
    with pytest.raises(JobError, match="below --min-auc"):
        run_train(spark, features_root, dataset.labels, registry, "--min-auc", "0.9999")
    assert not registry.exists()


def test_unpublished_features(spark: SparkSession, dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(JobError, match="no features published"):
        run_train(spark, str(tmp_path / "none"), dataset.labels, tmp_path / "models")


def test_as_of_trains_on_an_earlier_features_version(
    spark: SparkSession, dataset: Dataset, tmp_path: Path
) -> None:
    table = str(tmp_path / "features")
    for reference in ("2025-03-05T00:00:00Z", "2025-03-14T00:00:00Z"):
        argv = ["--input", dataset.events, "--output", table, "--no-online", "--reference-time", reference]
        run_job(spark, "features", argv)
    registry = tmp_path / "models"
    run_train(spark, table, dataset.labels, registry, "--version", VERSION, "--as-of", "0", "--min-auc", "0")
    meta = json.loads((registry / "churn" / VERSION / "metadata.json").read_text())
    assert meta["training"]["features"] == f"{table}@v0"
    with pytest.raises(JobError, match="Cannot time travel Delta table to version 5"):
        run_train(spark, table, dataset.labels, registry, "--as-of", "5")


def test_version_format_is_enforced(
    spark: SparkSession, dataset: Dataset, features_root: str, tmp_path: Path
) -> None:
    with pytest.raises(JobError, match="YYYYMMDDTHHMMSSZ"):
        run_train(spark, features_root, dataset.labels, tmp_path, "--version", "v1")


def test_labels_are_joined_by_entity(spark: SparkSession) -> None:
    names = feature_names()
    feats = spark.createDataFrame(
        [("a", *[1.0] * len(names)), ("b", *[2.0] * len(names))], ["entity_id", *names]
    )
    labels = spark.createDataFrame([("b", 1), ("c", 0)], LABEL_SCHEMA)
    rows = train.training_frame(feats, labels).select("entity_id", F.col("label")).collect()
    assert [(r.entity_id, r.label) for r in rows] == [("b", 1.0)]
