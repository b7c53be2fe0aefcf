"""Timings of the Pulumi engine running this project (``python -m benchmarks.engine.bench``)."""
