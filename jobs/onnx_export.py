"""ONNX graph for a binary logistic regression, per the model registry contract.

``score = Sigmoid(MatMul(features, W) + b)`` in double precision: input
``features`` [N, F], weight vector ``W`` [F], so MatMul yields [N] directly
(numpy semantics) and the output ``score`` is [N]. The opset and IR version are
pinned to ones every ONNX Runtime release of the last years loads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_NAME = "features"
OUTPUT_NAME = "score"
OPSET = 17
IR_VERSION = 8


def logistic_regression_model(
    coefficients: Sequence[float],
    intercept: float,
    *,
    feature_names: Sequence[str],
    model_name: str,
    version: str,
) -> onnx.ModelProto:
    if len(coefficients) != len(feature_names):
        raise ValueError(f"{len(coefficients)} coefficients for {len(feature_names)} features")
    weights = numpy_helper.from_array(np.asarray(coefficients, dtype=np.float64), name="weights")
    bias = numpy_helper.from_array(np.asarray([intercept], dtype=np.float64), name="intercept")
    nodes = [
        helper.make_node("MatMul", [INPUT_NAME, "weights"], ["margin_raw"], name="margin_matmul"),
        helper.make_node("Add", ["margin_raw", "intercept"], ["margin"], name="margin_add"),
        helper.make_node("Sigmoid", ["margin"], [OUTPUT_NAME], name="probability"),
    ]
    graph = helper.make_graph(
        nodes,
        f"{model_name}_logistic_regression",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, ["N", len(feature_names)])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, ["N"])],
        initializer=[weights, bias],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="dataplatform.jobs.train",
        doc_string=f"{model_name} {version}: P(label=1) from {len(feature_names)} features",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model, {"name": model_name, "version": version, "feature_names": ",".join(feature_names)}
    )
    onnx.checker.check_model(model, full_check=True)
    return model
