"""Spark: the processing engine, and the jobs the stack declares.

This is the one service whose shape differs between tiers, as the seeds
describe: dev runs a standalone master and workers (``spark-submit`` is a
one-shot container against the master); prod runs no cluster of its own but
the Spark Operator, which turns each SparkApplication into a driver pod that
asks the API server for executor pods. Both tiers run the same image, the
same ``jobs/`` code and the same S3A/Redis settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.services.common import defaults, resources
from infra.settings import Settings, SparkJobSettings, memory_bytes
from infra.targets import ChartSpec, PodFlows, Target
from infra.workload import (
    File,
    Metrics,
    Port,
    ProjectImage,
    Resources,
    Workload,
    http_check,
)
from jobs.launch import (
    APP_LABEL,
    DRIVER_ACCOUNT,
    MEMORY_OVERHEAD_MIB,
    SPARK_UID,
    SparkResources,
    driver_container_memory_mib,
    memory_mib,
    spark_application,
    spark_submit_command,
)

MASTER_PORT = 7077
MASTER_UI_PORT = 8080
WORKER_UI_PORT = 8081
OVERHEAD = MEMORY_OVERHEAD_MIB * 1024 * 1024


def spark_memory(quantity: str) -> str:
    """A Kubernetes quantity in Spark's notation (whole mebibytes)."""
    return f"{memory_bytes(quantity) // (1024 * 1024)}m"


def _mi(n: int) -> str:
    return f"{n // (1024 * 1024)}Mi"


def operator_pod_values() -> dict[str, object]:
    """Chart values putting one of the Spark Operator's pods (controller or
    webhook) under the Pod Security "restricted" profile, with requests and
    a memory limit."""
    return {
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    }


@dataclass(frozen=True)
class SparkEnvironment:
    """What every driver needs to reach the platform's data."""

    env: dict[str, pulumi.Input[str]]
    files: tuple[File, ...]
    talks_to: tuple[str, ...]


@dataclass(frozen=True)
class SparkArgs:
    settings: Settings
    environment: SparkEnvironment
    # What jobs need ready before they run (the buckets). The cluster itself
    # does not wait for them, so it starts alongside storage.
    jobs_depend_on: tuple[pulumi.Resource, ...] = ()


def image(settings: Settings) -> ProjectImage:
    return ProjectImage("spark", ".", "images/spark/Dockerfile", settings.version)


def submit_conf(settings: Settings) -> dict[str, str]:
    """Spark settings shared by both tiers' submissions, sizes aside."""
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"s3a://{settings.buckets.events}/",
        "spark.ui.prometheus.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }


def job_resources(settings: Settings) -> SparkResources:
    """What each job asks for, from ``dataplatform:spark``."""
    spark = settings.spark
    return SparkResources(
        driver_cores=spark.driver_cores,
        driver_memory_mib=memory_mib(spark.driver_memory),
        executor_cores=spark.executor_cores,
        executor_memory_mib=memory_mib(spark.executor_memory),
        min_executors=spark.min_executors,
        max_executors=spark.max_executors,
    )


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
        settings = args.settings
        env = args.environment
        conf = submit_conf(settings)
        sizes = job_resources(settings)
        if target.spark_standalone:
            if job.schedule:
                pulumi.log.warn(
                    f"sparkJobs {job.name}: schedules apply in prod only; dev runs it once",
                    resource=self,
                )
            memory = _mi(driver_container_memory_mib(sizes) * 1024 * 1024)
            workload = Workload(
                name=f"job-{job.name}",
                image=image(settings),
                user=SPARK_UID,
                group=SPARK_UID,
                command=tuple(
                    spark_submit_command(
                        f"spark://spark-master:{MASTER_PORT}",
                        job.job,
                        job.args,
                        conf,
                        sizes,
                        name=f"dataplatform-{job.name}",
                        driver_host=f"job-{job.name}",
                    )
                ),
                env=dict(env.env),
                files=env.files,
                health=None,
                one_shot=True,
                depends_on=("spark-master", *env.talks_to),
                talks_to=("spark-master", *env.talks_to),
                resources=Resources(str(settings.spark.driver_cores), memory, memory),
            )
            target.deploy(workload, self)
        else:
            assert secret_name is not None
            manifest = spark_application(
                job.name,
                job.job,
                job.args,
                image=target.image_name(image(settings)),
                env=env.env,
                secret_name=secret_name,
                conf=conf,
                resources=sizes,
                schedule=job.schedule,
            )
            target.custom_resource(job.name, manifest, self, depends_on or [])
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
    workloads: list[Workload]

    def __init__(
        self, name: str, args: SparkArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Spark", name, None, opts)
        settings = args.settings
        spark = settings.spark
        self.workloads = []
        runtime: list[pulumi.Resource] = []
        secret_name: pulumi.Output[str] | None = None
        # What a job submitted later needs to match the stack's own jobs.
        self.submit_conf = submit_conf(settings)
        self.job_resources = job_resources(settings)
        if target.spark_standalone:
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
                    Port("spark", MASTER_PORT, host_port=settings.host_ports.spark_master),
                    Port("ui", MASTER_UI_PORT, host_port=settings.host_ports.spark_ui),
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
                    f"spark://spark-master:{MASTER_PORT}",
                ),
                env={"SPARK_NO_DAEMONIZE": "true", **args.environment.env},
                ports=(Port("ui", WORKER_UI_PORT),),
                replicas=spark.workers,
                health=http_check(WORKER_UI_PORT, "/", start_seconds=20),
                metrics=Metrics(WORKER_UI_PORT, "/metrics/prometheus"),
                depends_on=("spark-master",),
                talks_to=("spark-master", *args.environment.talks_to),
                resources=resources(
                    settings,
                    "spark-worker",
                    defaults(str(spark.worker_cores), _mi(worker_memory), _mi(worker_memory + 2 * OVERHEAD)),
                ),
            )
            self.workloads = [master, worker]
            for workload in self.workloads:
                target.deploy(workload, self)
            self.master_url = f"spark://spark-master:{MASTER_PORT}"
            self.ui_url = target.published_url(master, "ui")
        else:
            operator = settings.spark_operator
            if operator.install:
                runtime.append(
                    target.install_chart(
                        ChartSpec(
                            name="spark-operator",
                            chart="spark-operator",
                            version=operator.chart_version,
                            repo=operator.chart_repo,
                            namespace=operator.namespace,
                            values={
                                "spark": {
                                    "jobNamespaces": [settings.kubernetes.namespace],
                                    "serviceAccount": {"create": False},
                                    "rbac": {"create": False},
                                },
                                # The operator's own pods under the same
                                # "restricted" profile as the platform's.
                                "controller": operator_pod_values(),
                                "webhook": {"enable": True, **operator_pod_values()},
                                "prometheus": {"metrics": {"enable": True}},
                            },
                        ),
                        self,
                    )
                )
            runtime.append(
                target.service_account(
                    DRIVER_ACCOUNT,
                    [
                        {
                            "apiGroups": [""],
                            "resources": ["pods", "services", "configmaps", "persistentvolumeclaims"],
                            "verbs": [
                                "create",
                                "get",
                                "list",
                                "watch",
                                "delete",
                                "deletecollection",
                                "patch",
                                "update",
                            ],
                        }
                    ],
                    self,
                )
            )
            secret_name = target.secret_volume("spark-credentials", args.environment.files, self)
            target.allow_flows(
                "spark-pods",
                PodFlows(
                    selector=dict(APP_LABEL), to_workloads=args.environment.talks_to, to_api_server=True
                ),
                self,
            )
            self.master_url = "k8s://https://kubernetes.default.svc:443"
            self.ui_url = pulumi.Output.from_input("kubectl port-forward to the driver pod, port 4040")
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
