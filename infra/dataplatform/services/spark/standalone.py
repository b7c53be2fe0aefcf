"""Spark in dev: a standalone master and workers, and each job as a one-shot
``spark-submit`` container against the master. Any target can run this."""

from __future__ import annotations

import pulumi

from dataplatform.config import Resources
from dataplatform.services.spark.shared import MASTER_PORT, SparkArgs, SparkJobSettings
from dataplatform.targets import Target
from dataplatform.workload import Metrics, Port, Workload, flow_target, http_check
from jobs.launch import SPARK_UI_PORT, SPARK_UID, driver_container_memory_mib, spark_submit_command
from jobs.quantity import kubernetes_memory, spark_memory

MASTER_UI_PORT = 8080
WORKER_UI_PORT = 8081
MASTER_URL = f"spark://spark-master:{MASTER_PORT}"


def deploy_cluster(
    args: SparkArgs, target: Target, parent: pulumi.Resource
) -> tuple[list[Workload], pulumi.Output[str]]:
    """The master (7077, UI 8080) and the workers that register with it;
    returns them and the master UI's URL."""
    workers = args.workers
    master = Workload(
        name="spark-master",
        image=args.image,
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
            Port("spark", MASTER_PORT, host_port=args.master_host_port),
            Port("ui", MASTER_UI_PORT, host_port=args.ui_host_port),
        ),
        health=http_check(MASTER_UI_PORT, "/", start_seconds=20),
        metrics=Metrics(MASTER_UI_PORT, "/metrics/master/prometheus"),
        resources=args.master_resources,
    )
    worker = Workload(
        name="spark-worker",
        image=args.image,
        user=SPARK_UID,
        group=SPARK_UID,
        command=("spark-class", "org.apache.spark.deploy.worker.Worker"),
        args=(
            "--cores",
            str(workers.cores),
            "--memory",
            spark_memory(workers.memory_mib),
            "--webui-port",
            str(WORKER_UI_PORT),
            MASTER_URL,
        ),
        env={"SPARK_NO_DAEMONIZE": "true", **args.environment.env},
        ports=(Port("ui", WORKER_UI_PORT),),
        replicas=workers.count,
        health=http_check(WORKER_UI_PORT, "/", start_seconds=20),
        metrics=Metrics(WORKER_UI_PORT, "/metrics/prometheus"),
        depends_on=("spark-master",),
        talks_to=("spark-master", *args.environment.talks_to),
        resources=args.worker_resources or workers.default_resources(),
    )
    workloads = [master, worker]
    for workload in workloads:
        target.deploy(workload, parent)
    return workloads, target.published_url(master, "ui")


def deploy_job(
    job: SparkJobSettings,
    args: SparkArgs,
    target: Target,
    parent: pulumi.Resource,
    continuous: bool = False,
) -> None:
    """A one-shot ``spark-submit`` container, run when the stack creates it;
    with ``continuous``, a long-running one, health-checked on its driver's
    UI and restarted when it fails (a streaming job)."""
    if job.schedule:
        pulumi.log.warn(
            f"sparkJobs {job.name}: schedules apply in prod only; dev runs it once",
            resource=parent,
        )
    sizes = args.job_resources
    environment = args.environment
    memory = kubernetes_memory(driver_container_memory_mib(sizes))
    workload = Workload(
        name=f"job-{job.name}",
        image=args.image,
        user=SPARK_UID,
        group=SPARK_UID,
        command=tuple(
            spark_submit_command(
                MASTER_URL,
                job.job,
                job.args,
                args.conf,
                sizes,
                name=f"dataplatform-{job.name}",
                driver_host=f"job-{job.name}",
            )
        ),
        env=dict(environment.env),
        files=environment.files,
        ports=(Port("ui", SPARK_UI_PORT),) if continuous else (),
        # The driver's UI answers once the session is up; a stream is given
        # time to start its session before it counts as unhealthy.
        health=http_check(SPARK_UI_PORT, "/api/v1/applications", start_seconds=90) if continuous else None,
        one_shot=not continuous,
        depends_on=("spark-master", *(flow_target(entry)[0] for entry in environment.talks_to)),
        talks_to=("spark-master", *environment.talks_to),
        resources=Resources(cpu_request=str(sizes.driver_cores), memory_request=memory, memory_limit=memory),
    )
    target.deploy(workload, parent)
