"""Resolve the S3A connector jars for test_s3a.py into a directory.

    python -m jobs.tests.s3a_jars /tmp/ivy    # then: DP_TEST_S3A_JARS=/tmp/ivy/jars

Spark's own dependency resolver fetches hadoop-aws at the Hadoop version
inside pyspark, with the AWS SDK bundle it declares (about 550 MB).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyspark.sql import SparkSession

HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.4.1"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 64
    ivy = Path(argv[0]).resolve()
    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.jars.packages", HADOOP_AWS)
        .config("spark.jars.ivy", str(ivy))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.stop()
    print(ivy / "jars")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
