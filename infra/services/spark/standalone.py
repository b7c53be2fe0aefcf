"""Spark in dev: a standalone master and workers, and each job as a one-shot
``spark-submit`` container against the master. Any target can run this."""

from __future__ import annotations

import pulumi

from infra.services.common import defaults, resources
from infra.services.spark.shared import (
    CONFIG,
    MASTER_PORT,
    OVERHEAD,
    SparkEnvironment,
    SparkJobSettings,
    image,
    job_resources,
    mebibytes,
    spark_memory,
    submit_conf,
)
from infra.settings import Settings, memory_bytes
from infra.targets import Target
from infra.workload import Metrics, Port, Resources, Workload, http_check
from jobs.launch import SPARK_UID, driver_container_memory_mib, spark_submit_command

MASTER_UI_PORT = 8080
WORKER_UI_PORT = 8081
MASTER_URL = f"spark://spark-master:{MASTER_PORT}"


def deploy_cluster(
    settings: Settings, environment: SparkEnvironment, target: Target, parent: pulumi.Resource
) -> tuple[list[Workload], pulumi.Output[str]]:
    """The master (7077, UI 8080) and ``spark.workers`` workers that register
    with it; returns them and the master UI's URL."""
    spark = CONFIG.of(settings)
    master = Workload(
        name="spark-master",
        image=image(settings),
        user=SPARK_UID,
        group=SPARK_UID,
        command=("spark-class", "org.apache.spark.deploy.master.Master"),
        args=(
            "--host",
            "spark-master",
            "--port",
            str(MASTER_PORT),
            "--webui-port",
            str(MASTER_UI_PORT),
        ),
        env={"SPARK_NO_DAEMONIZE": "true"},
        ports=(
            Port("spark", MASTER_PORT, host_port=settings.host_port("spark_master")),
            Port("ui", MASTER_UI_PORT, host_port=settings.host_port("spark_ui")),
        ),
        health=http_check(MASTER_UI_PORT, "/", start_seconds=20),
        metrics=Metrics(MASTER_UI_PORT, "/metrics/master/prometheus"),
        resources=resources(settings, "spark-master", defaults("250m", "512Mi", "1Gi")),
    )
    worker_memory = memory_bytes(spark.worker_memory)
    worker = Workload(
        name="spark-worker",
        image=image(settings),
        user=SPARK_UID,
        group=SPARK_UID,
        command=("spark-class", "org.apache.spark.deploy.worker.Worker"),
        args=(
            "--cores",
            str(spark.worker_cores),
            "--memory",
            spark_memory(spark.worker_memory),
            "--webui-port",
            str(WORKER_UI_PORT),
            MASTER_URL,
        ),
        env={"SPARK_NO_DAEMONIZE": "true", **environment.env},
        ports=(Port("ui", WORKER_UI_PORT),),
        replicas=spark.workers,
        health=http_check(WORKER_UI_PORT, "/", start_seconds=20),
        metrics=Metrics(WORKER_UI_PORT, "/metrics/prometheus"),
        depends_on=("spark-master",),
        talks_to=("spark-master", *environment.talks_to),
        resources=resources(
            settings,
            "spark-worker",
            defaults(
                str(spark.worker_cores), mebibytes(worker_memory), mebibytes(worker_memory + 2 * OVERHEAD)
            ),
        ),
    )
    workloads = [master, worker]
    for workload in workloads:
        target.deploy(workload, parent)
    return workloads, target.published_url(master, "ui")


def deploy_job(
    job: SparkJobSettings,
    settings: Settings,
    environment: SparkEnvironment,
    target: Target,
    parent: pulumi.Resource,
) -> None:
    """A one-shot ``spark-submit`` container, run when the stack creates it."""
    if job.schedule:
        pulumi.log.warn(
            f"sparkJobs {job.name}: schedules apply in prod only; dev runs it once",
            resource=parent,
        )
    sizes = job_resources(settings)
    memory = mebibytes(driver_container_memory_mib(sizes) * 1024 * 1024)
    workload = Workload(
        name=f"job-{job.name}",
        image=image(settings),
        user=SPARK_UID,
        group=SPARK_UID,
        command=tuple(
            spark_submit_command(
                MASTER_URL,
                job.job,
                job.args,
                submit_conf(settings),
                sizes,
                name=f"dataplatform-{job.name}",
                driver_host=f"job-{job.name}",
            )
        ),
        env=dict(environment.env),
        files=environment.files,
        health=None,
        one_shot=True,
        depends_on=("spark-master", *environment.talks_to),
        talks_to=("spark-master", *environment.talks_to),
        resources=Resources(str(CONFIG.of(settings).driver_cores), memory, memory),
    )
    target.deploy(workload, parent)
