"""Submitting a job to a deployed stack: the tier its outputs name picks the way it runs.

dev runs it in a one-shot driver container against the standalone cluster
(``jobs.submit_dev``), on the Docker host the stack recorded; prod applies it
as a SparkApplication (``jobs.submit_prod``) on the cluster and kubeconfig
context the stack recorded. The outputs come from ``pulumi stack output`` in
the deploying program's directory or from a saved copy of them. A local path
given as a job's input is uploaded to the stack's raw bucket first, and the
job reads it from there. Only the standard library is needed here (and boto3
for uploads): no pyspark on the caller's machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobs import stack_outputs, submit_dev, submit_prod, uploads
from jobs.stack_outputs import SubmitOptions


def submit(
    job: str,
    job_args: Sequence[str],
    *,
    stack: str | None,
    project_dir: str | None = None,
    outputs_file: str | None = None,
    options: SubmitOptions | None = None,
) -> int:
    """Run ``job`` on the stack ``stack`` (outputs read with pulumi in
    ``project_dir``) or on the stack whose saved outputs are ``outputs_file``."""
    options = options or SubmitOptions()
    uploads.check_outputs(job, job_args)
    target = stack_outputs.read_target(stack, project_dir, outputs_file)
    if target.tier == "dev":
        return submit_dev.run(job, job_args, target, options)
    return submit_prod.run(job, job_args, target, options)
