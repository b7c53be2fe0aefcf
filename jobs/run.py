"""spark-submit entry point: ``spark-submit .../jobs/run.py <job> [args]``."""

import os
import sys

# spark-submit puts this file's directory first on sys.path, where the
# package's modules would shadow top-level ones; import them as ``jobs.*``.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
_PARENT = os.path.dirname(_HERE)
if _PARENT not in sys.path:
    sys.path.insert(0, _PARENT)

from jobs.cli import spark_submit_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(spark_submit_main(sys.argv[1:]))
