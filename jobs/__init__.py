"""PySpark jobs of the data platform: synthetic data, features, training."""
