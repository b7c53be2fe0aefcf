"""Spark in prod: no cluster of its own but the Spark Operator, which turns
each SparkApplication into a driver pod that asks the API server for
executor pods. Needs a ``ClusterTarget``."""

from __future__ import annotations

from typing import Any, cast

import pulumi

from dataplatform.images import Reference
from dataplatform.monitoring import metrics
from dataplatform.services.spark.shared import CHART_NAME, SparkArgs, SparkJobSettings
from dataplatform.targets import ChartSpec, ClusterTarget, PodAdmission, PodFlows
from dataplatform.workload import PodScrape
from jobs.conventions import APP_LABEL, DRIVER_ACCOUNT, DRIVER_LABEL, EXECUTOR_ACCOUNT, JOB_LABEL, NAME_LABEL
from jobs.launch import DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL_SECONDS, SPARK_UI_PORT, spark_application

# A stream's driver is back this soon after it failed: fresh features wait
# for it.
STREAM_RETRY_SECONDS = 10
MASTER_URL = "k8s://https://kubernetes.default.svc:443"
UI_HINT = "kubectl port-forward to the driver pod, port 4040"
# The operator's admission webhook listens here (the chart's default, set
# so the namespace's NetworkPolicy and the chart agree).
WEBHOOK_PORT = 9443
# The controller's Prometheus endpoint (the chart's default port, set so the
# scrape and the chart agree).
METRICS_PORT = 8080
# The application labels the operator copies onto its metrics: which job
# failed, and where. Its metric labels keep only [a-zA-Z0-9_] after it
# turns "-" into "_", so the job label has no prefix.
METRIC_LABELS = ("namespace", JOB_LABEL)
# What a driver does, and nothing more: it creates, watches and removes its
# executor pods and the ConfigMap they read their configuration from. It
# creates no Service (the operator makes the driver's) and no volume claim
# (jobs use emptyDir scratch). RBAC cannot limit which pods it creates; an
# admission policy does (``deploy_runtime``), with Pod Security "restricted"
# on the jobs namespace and the Spark NetworkPolicy.
DRIVER_RULES: list[dict[str, list[str]]] = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["create", "get", "list", "delete", "deletecollection"],
    },
]


def image_values(reference: str) -> dict[str, str]:
    """The chart's ``image`` values for a reference registry/repo:tag[@digest];
    the chart joins them as registry/repo:tag, so a digest rides along in
    the tag."""
    ref = Reference.parse(reference)
    tag = (ref.tag or "") + (f"@{ref.digest}" if ref.digest else "")
    return {"registry": ref.host or "docker.io", "repository": ref.repository, "tag": tag}


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


def deploy_runtime(
    args: SparkArgs, target: ClusterTarget, parent: pulumi.Resource
) -> tuple[list[pulumi.Resource], pulumi.Output[str]]:
    """The operator from its pinned chart (webhook on, the jobs namespace
    watched), the drivers' and executors' service accounts, the credentials
    Secret, the network policy of Spark pods and the admission policy on the
    pods drivers create; returns what jobs wait for and the Secret's name."""
    runtime: list[pulumi.Resource] = []
    operator = args.operator
    environment = args.environment
    if operator.install:
        image: dict[str, object] = {**(image_values(operator.image) if operator.image else {})}
        if args.image_pull_secrets:
            image["pullSecrets"] = [{"name": name} for name in args.image_pull_secrets]
        runtime.append(
            target.install_chart(
                ChartSpec(
                    name="spark-operator",
                    chart=CHART_NAME,
                    version=operator.chart_version,
                    repo=operator.chart_repo,
                    path=operator.chart_path,
                    namespace=operator.namespace,
                    # The API server calls the webhook for every
                    # SparkApplication; nothing else reaches the operator.
                    ingress_ports=(WEBHOOK_PORT,),
                    values={
                        **({"image": image} if image else {}),
                        "spark": {
                            "jobNamespaces": [args.namespace, *operator.job_namespaces],
                            "serviceAccount": {"create": False},
                            "rbac": {"create": False},
                        },
                        # The operator's own pods under the same
                        # "restricted" profile as the platform's.
                        "controller": operator_pod_values(),
                        "webhook": {"enable": True, "port": WEBHOOK_PORT, **operator_pod_values()},
                        "prometheus": {
                            "metrics": {
                                "enable": True,
                                "port": METRICS_PORT,
                                "labels": ",".join(METRIC_LABELS),
                            }
                        },
                    },
                ),
                parent,
            )
        )
    # Drivers call the API server, so their account's token is mounted;
    # executors never do, so theirs has none and no role.
    runtime.append(target.service_account(DRIVER_ACCOUNT, DRIVER_RULES, parent, mount_token=True))
    runtime.append(target.service_account(EXECUTOR_ACCOUNT, [], parent))
    secret_name = target.secret_volume("spark-credentials", environment.files, parent)
    target.allow_flows(
        "spark-pods",
        PodFlows(selector=dict(APP_LABEL), to_workloads=environment.talks_to, to_api_server=True),
        parent,
    )
    # What a driver may create: executors of its own application only.
    runtime.append(
        target.admit_pods(
            "spark-executors",
            PodAdmission(
                creator=DRIVER_ACCOUNT,
                account=EXECUTOR_ACCOUNT,
                images=(target.image_name(args.image),),
                secret=secret_name,
                labels={**APP_LABEL, "spark-role": "executor"},
                # Not a service's pod, nor a driver Prometheus scrapes.
                forbidden_label_keys=(NAME_LABEL, *DRIVER_LABEL),
            ),
            parent,
        )
    )
    return runtime, secret_name


def pod_scrapes(args: SparkArgs) -> list[PodScrape]:
    """What Prometheus scrapes of Spark in prod: each running driver's UI,
    which reports every live executor of its application (executors serve
    no HTTP of their own, so their metrics come through their driver,
    labelled ``executor_id``), and the operator's controller when the
    platform installs it."""
    catalog = metrics.SPARK_DRIVERS
    drivers = PodScrape(
        catalog.job,
        args.namespace,
        {**APP_LABEL, **DRIVER_LABEL},
        SPARK_UI_PORT,
        "/metrics/executors/prometheus",
        transient=catalog.transient,
    )
    if not args.operator.install:
        return [drivers]
    controller = PodScrape(
        metrics.SPARK_OPERATOR.job,
        args.operator.namespace,
        {NAME_LABEL: CHART_NAME, "app.kubernetes.io/component": "controller"},
        METRICS_PORT,
    )
    return [drivers, controller]


def deploy_job(
    job: SparkJobSettings,
    args: SparkArgs,
    target: ClusterTarget,
    parent: pulumi.Resource,
    secret_name: pulumi.Output[str],
    depends_on: list[pulumi.Resource],
    restarts: int | None = None,
) -> None:
    """A SparkApplication, or a ScheduledSparkApplication with a schedule.
    With ``restarts`` (a streaming job), the operator restarts it that many
    times after failures, ``STREAM_RETRY_SECONDS`` apart, instead of the
    defaults of every job."""
    retries, interval = (
        (DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL_SECONDS)
        if restarts is None
        else (restarts, STREAM_RETRY_SECONDS)
    )
    manifest = spark_application(
        job.name,
        job.job,
        job.args,
        image=target.image_name(args.image),
        env=args.environment.env,
        secret_name=secret_name,
        conf=args.conf,
        resources=args.job_resources,
        schedule=job.schedule,
        retries=retries,
        retry_interval_seconds=interval,
    )
    if args.image_pull_secrets:
        spec = cast(dict[str, Any], manifest["spec"])
        application = cast(dict[str, Any], spec["template"]) if job.schedule else spec
        application["imagePullSecrets"] = list(args.image_pull_secrets)
    target.custom_resource(job.name, manifest, parent, depends_on)
