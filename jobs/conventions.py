"""Names and paths the stack, the jobs CLI and the tools agree on: one home each.

Stdlib only. The stack labels and mounts by these; the jobs CLI builds the
same pods with them; the live tests select pods by them.
"""

from __future__ import annotations

PROJECT = "dataplatform"
# Where every workload finds its secret files (a tmpfs or a Secret volume).
SECRETS_DIR = "/run/secrets"
# Kubernetes' recommended labels: every object carries PART_OF, every
# workload's pods its NAME_LABEL.
NAME_LABEL = "app.kubernetes.io/name"
PART_OF = {"app.kubernetes.io/part-of": PROJECT}
# Selected by the Spark NetworkPolicy: every driver and executor carries it.
APP_LABEL = {"dataplatform.io/spark-app": "true"}
# Every driver carries it besides (Spark reserves its own spark-role label
# for itself): Prometheus finds drivers by it, and no executor may wear it.
DRIVER_LABEL = {"dataplatform.io/spark-driver": "true"}
# On every SparkApplication: the job it runs. The Spark Operator copies it
# onto its metrics as ``dataplatform_job`` (a metric label cannot hold "."
# or "/", so the key has no prefix).
JOB_LABEL = "dataplatform-job"
RUN_ID_ANNOTATION = "dataplatform.io/run-id"
# The service account Spark drivers run as (prod).
DRIVER_ACCOUNT = "spark-driver"
# The service account executors run as (prod): no token, no role.
EXECUTOR_ACCOUNT = "spark-executor"
# Under the raw bucket: where event files land for the streaming job, and
# where it moves the ones it refuses.
LANDING_PREFIX = "landing"
QUARANTINE_PREFIX = "quarantine"
