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
from typing import Any

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

MASTER_PORT = 7077
MASTER_UI_PORT = 8080
WORKER_UI_PORT = 8081
SPARK_UID = 185
JOB_ENTRY = "/opt/dataplatform/jobs/run.py"
DRIVER_ACCOUNT = "spark-driver"
APP_LABEL = {"dataplatform.io/spark-app": "true"}
SPARK_VERSION = "4.0.1"
# JVM and Python memory beyond the heap Spark is given.
OVERHEAD = 384 * 1024 * 1024


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
    """Spark settings shared by both tiers' submissions."""
    spark = settings.spark
    return {
        "spark.driver.cores": str(spark.driver_cores),
        "spark.driver.memory": spark_memory(spark.driver_memory),
        "spark.executor.cores": str(spark.executor_cores),
        "spark.executor.memory": spark_memory(spark.executor_memory),
        "spark.dynamicAllocation.enabled": "true",
        # No external shuffle service on either tier: track shuffle files.
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
        "spark.dynamicAllocation.minExecutors": str(spark.min_executors),
        "spark.dynamicAllocation.maxExecutors": str(spark.max_executors),
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"s3a://{settings.buckets.events}/",
        "spark.ui.prometheus.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }


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
        if target.spark_standalone:
            if job.schedule:
                pulumi.log.warn(
                    f"sparkJobs {job.name}: schedules apply in prod only; dev runs it once",
                    resource=self,
                )
            submit = [
                "spark-submit",
                "--master",
                f"spark://spark-master:{MASTER_PORT}",
                "--conf",
                f"spark.driver.host=job-{job.name}",
            ]
            for key, value in sorted(conf.items()):
                submit += ["--conf", f"{key}={value}"]
            memory = memory_bytes(settings.spark.driver_memory) + OVERHEAD
            workload = Workload(
                name=f"job-{job.name}",
                image=image(settings),
                user=SPARK_UID,
                group=SPARK_UID,
                command=tuple([*submit, JOB_ENTRY, job.job, *job.args]),
                env=dict(env.env),
                files=env.files,
                health=None,
                one_shot=True,
                depends_on=("spark-master", *env.talks_to),
                talks_to=("spark-master", *env.talks_to),
                resources=Resources(str(settings.spark.driver_cores), _mi(memory), _mi(memory)),
            )
            target.deploy(workload, self)
        else:
            assert secret_name is not None
            manifest = spark_application(
                job, settings, target.image_name(image(settings)), env.env, secret_name, conf
            )
            target.custom_resource(job.name, manifest, self, depends_on or [])
        self.register_outputs({})


def spark_application(
    job: SparkJobSettings,
    settings: Settings,
    image_ref: pulumi.Input[str],
    env: dict[str, pulumi.Input[str]],
    secret_name: pulumi.Input[str],
    conf: dict[str, str],
) -> dict[str, Any]:
    """The SparkApplication (or ScheduledSparkApplication) manifest of a job."""
    spark = settings.spark
    security = {
        "runAsNonRoot": True,
        "runAsUser": SPARK_UID,
        "runAsGroup": SPARK_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    mounts = [
        {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True},
        {"name": "scratch", "mountPath": "/tmp"},
    ]
    env_list = [{"name": k, "value": v} for k, v in sorted(env.items())]

    def pod(cores: int, memory: str) -> dict[str, Any]:
        return {
            "cores": cores,
            "coreLimit": f"{cores * 1000}m",
            "memory": spark_memory(memory),
            "memoryOverhead": _mi(OVERHEAD).replace("Mi", "m"),
            "labels": dict(APP_LABEL),
            "env": env_list,
            "volumeMounts": mounts,
            "securityContext": security,
        }

    driver = {**pod(spark.driver_cores, spark.driver_memory), "serviceAccount": DRIVER_ACCOUNT}
    executor = pod(spark.executor_cores, spark.executor_memory)
    executor["instances"] = max(1, spark.min_executors)
    spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": image_ref,
        "imagePullPolicy": "IfNotPresent",
        "mainApplicationFile": f"local://{JOB_ENTRY}",
        "arguments": [job.job, *job.args],
        "sparkVersion": SPARK_VERSION,
        "sparkConf": {
            k: v
            for k, v in conf.items()
            if not k.startswith(("spark.driver.", "spark.executor.", "spark.dynamicAllocation."))
        },
        "restartPolicy": {
            "type": "OnFailure",
            "onFailureRetries": 2,
            "onFailureRetryInterval": 60,
            "onSubmissionFailureRetries": 2,
            "onSubmissionFailureRetryInterval": 60,
        },
        "timeToLiveSeconds": 86400,
        "dynamicAllocation": {
            "enabled": True,
            "initialExecutors": max(1, spark.min_executors),
            "minExecutors": spark.min_executors,
            "maxExecutors": spark.max_executors,
            "shuffleTrackingEnabled": True,
        },
        "driver": driver,
        "executor": executor,
        "volumes": [
            {"name": "secrets", "secret": {"secretName": secret_name, "defaultMode": 0o440}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}},
        ],
    }
    meta = {"name": job.name, "labels": {"app.kubernetes.io/part-of": "dataplatform"}}
    if job.schedule:
        return {
            "apiVersion": "sparkoperator.k8s.io/v1beta2",
            "kind": "ScheduledSparkApplication",
            "metadata": meta,
            "spec": {
                "schedule": job.schedule,
                "concurrencyPolicy": "Forbid",
                "successfulRunHistoryLimit": 3,
                "failedRunHistoryLimit": 3,
                "template": spec,
            },
        }
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": meta,
        "spec": spec,
    }


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
