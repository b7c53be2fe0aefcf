"""ONNX model serving for the dataplatform."""

__version__ = "0.1.0"
