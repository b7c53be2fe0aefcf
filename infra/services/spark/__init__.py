"""Spark: the processing engine, and the jobs the stack declares.

The one service whose shape differs between tiers, as the seeds describe,
with a provisioner for each: ``standalone`` (dev: a master, workers and
``spark-submit`` containers, on any target) and ``operator`` (prod: the
Spark Operator and SparkApplications, on a ``ClusterTarget``). Both run the
same image, the same ``jobs/`` code and the same S3A/Redis settings; this
module picks one by what the target can do.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.services.spark import operator, standalone
from infra.services.spark.shared import (
    SparkEnvironment,
    image,
    job_resources,
    spark_memory,
    submit_conf,
)
from infra.settings import Settings, SparkJobSettings
from infra.targets import ClusterTarget, Target
from infra.workload import Workload

__all__ = [
    "Spark",
    "SparkArgs",
    "SparkEnvironment",
    "SparkJob",
    "image",
    "job_resources",
    "spark_memory",
    "submit_conf",
]


@dataclass(frozen=True)
class SparkArgs:
    settings: Settings
    environment: SparkEnvironment
    # What jobs need ready before they run (the buckets). The cluster itself
    # does not wait for them, so it starts alongside storage.
    jobs_depend_on: tuple[pulumi.Resource, ...] = ()


class SparkJob(pulumi.ComponentResource):
    """One job of ``jobs/`` declared in the stack.

    Dev: a one-shot ``spark-submit`` container, run when the stack creates
    it (schedules are prod-only). Prod: a SparkApplication, or a
    ScheduledSparkApplication with ``schedule``, with driver and executor
    requests and limits, dynamic allocation with shuffle tracking, a
    bounded restart policy, S3A settings and Prometheus metrics.
    """

    def __init__(
        self,
        name: str,
        job: SparkJobSettings,
        args: SparkArgs,
        target: Target,
        depends_on: list[pulumi.Resource] | None = None,
        secret_name: pulumi.Output[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("dataplatform:index:SparkJob", name, None, opts)
        if isinstance(target, ClusterTarget):
            assert secret_name is not None
            operator.deploy_job(
                job, args.settings, args.environment, target, self, secret_name, depends_on or []
            )
        else:
            standalone.deploy_job(job, args.settings, args.environment, target, self)
        self.register_outputs({})


class Spark(pulumi.ComponentResource):
    """Spark in either tier, and the jobs the stack declares.

    Dev: a standalone master (7077, UI 8080) and ``spark.workers`` workers
    that register with it. Prod: the Spark Operator from its pinned Helm
    chart with the webhook on and the platform namespace watched, a driver
    service account allowed to manage its executors, and network policies
    that let Spark pods reach MinIO, Redis and the API server only.
    """

    master_url: str
    ui_url: pulumi.Output[str]
    workloads: list[Workload]

    def __init__(
        self, name: str, args: SparkArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Spark", name, None, opts)
        settings = args.settings
        self.workloads = []
        runtime: list[pulumi.Resource] = []
        secret_name: pulumi.Output[str] | None = None
        # What a job submitted later needs to match the stack's own jobs.
        self.submit_conf = submit_conf(settings)
        self.job_resources = job_resources(settings)
        if isinstance(target, ClusterTarget):
            runtime, secret_name = operator.deploy_runtime(settings, args.environment, target, self)
            self.master_url = operator.MASTER_URL
            self.ui_url = pulumi.Output.from_input(operator.UI_HINT)
        else:
            self.workloads, self.ui_url = standalone.deploy_cluster(settings, args.environment, target, self)
            self.master_url = standalone.MASTER_URL
        self.secret_name = secret_name
        self.jobs = [
            SparkJob(
                f"job-{job.name}",
                job,
                args,
                target,
                depends_on=runtime,
                secret_name=secret_name,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.jobs_depend_on)),
            )
            for job in settings.spark_jobs
        ]
        self.register_outputs({"master_url": self.master_url})
