"""Fetch Delta Lake's jars for the delta-spark release installed beside pyspark.

Run in the image's build stage, with the venv's Python:

    /opt/venv/bin/python3 fetch_delta_jars.py OUT_DIR

The version is the installed ``delta-spark`` package's (pinned by
jobs/requirements.txt), so the Python API and the JVM code always match.
``delta-spark`` needs ``delta-storage`` beside it; its other dependencies
(antlr4-runtime, Spark itself) are in pyspark's jars already. Every
download is checked against Maven Central's published SHA-1.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from fetch_s3a_jars import artifact_url, fetch

SCALA = "2.13"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    version = importlib.metadata.version("delta-spark")
    for artifact in (f"delta-spark_{SCALA}", "delta-storage"):
        fetch(artifact_url("io.delta", artifact, version, "jar"), out / f"{artifact}-{version}.jar")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
