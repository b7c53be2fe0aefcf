"""The policy pack in policy/: each policy on hand-made resources, then the
whole pack over what both stacks declare.

The stacks' resources come from the Pulumi program run under mocks
(tools/harness.py). Their inputs are what the engine hands a policy pack:
camelCase keys, numbers as floats; ``unwrap`` removes the secret wrappers
as the policy SDK does when it deserializes them.
"""

from __future__ import annotations

import copy
import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pulumi_policy
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from dataplatform import platform as platform_module
from dataplatform.platform import DataPlatform
from dataplatform.services.spark.shared import STREAM_NAME
from dataplatform.targets.kubernetes import KubernetesTarget
from policy.dataplatform_policies import (
    RULES,
    Enforcement,
    ResourceRule,
    StackResource,
    StackRule,
    Violation,
    evaluate,
)
from policy.dataplatform_policies.common import image_pin_problem, is_secret_name, selector_matches
from tools.harness import ROOT, Recorder, run_stack, unwrap

POLICY_DIR = ROOT / "policy"
RULE = {r.name: r for r in RULES}

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
POD = "kubernetes:core/v1:Pod"
SERVICE = "kubernetes:core/v1:Service"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SPARK_APP = "kubernetes:sparkoperator.k8s.io/v1beta2:SparkApplication"
SCHEDULED_SPARK_APP = "kubernetes:sparkoperator.k8s.io/v1beta2:ScheduledSparkApplication"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
IMAGE = "docker:index/image:Image"


# -- good resources, shaped like what the targets render -------------------


DIGEST = "sha256:" + "ab" * 32
PINNED_IMAGE = f"registry.example.com/dataplatform/app:0.1.0@{DIGEST}"


def good_container(name: str = "app") -> dict[str, Any]:
    return {
        "name": name,
        "image": PINNED_IMAGE,
        "ports": [{"name": "http", "containerPort": 8080.0, "protocol": "TCP"}],
        "env": [
            {"name": "APP_PORT", "value": "8080"},
            {"name": "APP_PASSWORD_FILE", "value": "/run/secrets/password"},
            {"name": "APP_TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080.0}},
        "livenessProbe": {"tcpSocket": {"port": "http"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def good_pod(name: str = "app") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001.0,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [good_container()],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "files", "secret": {"secretName": "files"}},
            ],
        },
    }


def good_deployment(name: str = "app") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "dataplatform"},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": name}}, "template": good_pod(name)},
    }


def good_docker_container() -> dict[str, Any]:
    return {
        "name": "dataplatform-dev-app",
        "image": "sha256:" + "ab" * 32,
        "user": "10001:10001",
        "envs": ["APP_PORT=8080", "APP_PASSWORD_FILE=/run/secrets/password", "GF_SECURITY_ADMIN_USER=admin"],
        "ports": [{"internal": 8080.0, "external": 8080.0, "ip": "127.0.0.1"}],
        "healthcheck": {"tests": ["CMD", "app", "--healthcheck"], "interval": "10s", "retries": 6.0},
        "restart": "on-failure",
        "maxRetryCount": 5.0,
        "mustRun": True,
        "memory": 256.0,
        "readOnly": True,
        "capabilities": {"drops": ["ALL"]},
        "securityOpts": ["no-new-privileges:true"],
        "volumes": [{"volumeName": "data", "containerPath": "/data"}],
    }


def one_shot_container() -> dict[str, Any]:
    props = good_docker_container()
    props.update(mustRun=False, attach=True, restart="no", maxRetryCount=0.0)
    del props["healthcheck"]
    return props


def container(props: dict[str, Any]) -> dict[str, Any]:
    """The first container of a Deployment."""
    first: dict[str, Any] = props["spec"]["template"]["spec"]["containers"][0]
    return first


def pod_spec(props: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = props["spec"]["template"]["spec"]
    return spec


def security(props: dict[str, Any]) -> dict[str, Any]:
    sc: dict[str, Any] = container(props)["securityContext"]
    return sc


def messages(rule: str, resource_type: str, props: dict[str, Any], config: Any = None) -> list[str]:
    r = RULE[rule]
    assert isinstance(r, ResourceRule)
    return r.validate(resource_type, props, config)


# -- each resource policy fires on a bad resource --------------------------

Mutation = Callable[[dict[str, Any]], object]

# (policy, resource type, good resource, how to break it, message expected)
BAD: list[tuple[str, str, Callable[[], dict[str, Any]], Mutation, str]] = [
    (
        "k8s-run-as-non-root",
        DEPLOYMENT,
        good_deployment,
        lambda p: (pod_spec(p)["securityContext"].pop("runAsNonRoot"), security(p).pop("runAsNonRoot")),
        "container app: runAsNonRoot must be true (on the pod or the container)",
    ),
    (
        "k8s-run-as-non-root",
        DEPLOYMENT,
        good_deployment,
        lambda p: security(p).update(runAsUser=0.0),
        "container app: securityContext.runAsUser is 0 (root)",
    ),
    (
        "k8s-no-privilege-escalation",
        DEPLOYMENT,
        good_deployment,
        lambda p: security(p).update(allowPrivilegeEscalation=True),
        "container app: securityContext.allowPrivilegeEscalation must be false",
    ),
    (
        "k8s-no-privilege-escalation",
        JOB,
        good_deployment,
        lambda p: pod_spec(p).update(initContainers=[{**good_container("init"), "securityContext": {}}]),
        "init container init: securityContext.allowPrivilegeEscalation must be false",
    ),
    (
        "k8s-drop-all-capabilities",
        DEPLOYMENT,
        good_deployment,
        lambda p: security(p)["capabilities"].update(drop=["NET_RAW"]),
        "container app: securityContext.capabilities.drop must include ALL",
    ),
    (
        "k8s-drop-all-capabilities",
        DEPLOYMENT,
        good_deployment,
        lambda p: security(p)["capabilities"].update(add=["NET_BIND_SERVICE", "SYS_ADMIN"]),
        "container app: adds capabilities SYS_ADMIN; only NET_BIND_SERVICE may be added",
    ),
    (
        "k8s-seccomp-runtime-default",
        DEPLOYMENT,
        good_deployment,
        lambda p: pod_spec(p)["securityContext"].pop("seccompProfile"),
        "container app: no seccompProfile; set type RuntimeDefault on the pod or the container",
    ),
    (
        "k8s-seccomp-runtime-default",
        DEPLOYMENT,
        good_deployment,
        lambda p: security(p).update(seccompProfile={"type": "Unconfined"}),
        "container app: seccompProfile is Unconfined; use RuntimeDefault",
    ),
    (
        "k8s-no-privileged",
        DEPLOYMENT,
        good_deployment,
        lambda p: security(p).update(privileged=True),
        "container app: runs privileged",
    ),
    (
        "k8s-no-privileged",
        CRON_JOB,
        lambda: {"spec": {"jobTemplate": {"spec": {"template": good_pod()}}}},
        lambda p: p["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
            "securityContext"
        ].update(privileged=True),
        "container app: runs privileged",
    ),
    (
        "k8s-no-host-namespaces",
        DEPLOYMENT,
        good_deployment,
        lambda p: pod_spec(p).update(hostNetwork=True),
        "pod sets hostNetwork: true",
    ),
    (
        "k8s-no-host-namespaces",
        POD,
        good_pod,
        lambda p: p["spec"].update(hostPID=True),
        "pod sets hostPID: true",
    ),
    (
        "k8s-no-host-namespaces",
        DEPLOYMENT,
        good_deployment,
        lambda p: container(p)["ports"][0].update(hostPort=8080.0),
        "container app: binds hostPort 8080 on the node",
    ),
    (
        "k8s-no-host-path-volumes",
        DEPLOYMENT,
        good_deployment,
        lambda p: pod_spec(p)["volumes"].append(
            {"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}
        ),
        "volume sock mounts hostPath /var/run/docker.sock from the node",
    ),
    (
        "k8s-no-host-path-volumes",
        STATEFUL_SET,
        good_deployment,
        lambda p: pod_spec(p)["volumes"].append({"name": "shared", "nfs": {"server": "nas", "path": "/"}}),
        "volume shared is of type nfs, which the restricted profile does not allow",
    ),
    (
        "k8s-read-only-root-filesystem",
        DEPLOYMENT,
        good_deployment,
        lambda p: security(p).update(readOnlyRootFilesystem=False),
        "container app: securityContext.readOnlyRootFilesystem should be true (emptyDir for scratch paths)",
    ),
    (
        "k8s-resource-requests-and-limits",
        DEPLOYMENT,
        good_deployment,
        lambda p: container(p)["resources"].pop("limits"),
        "container app: no resources.limits.memory",
    ),
    (
        "k8s-resource-requests-and-limits",
        JOB,
        good_deployment,
        lambda p: container(p).pop("resources"),
        "container app: no resources.requests.cpu, resources.requests.memory, resources.limits.memory",
    ),
    (
        "k8s-readiness-and-liveness-probes",
        DEPLOYMENT,
        good_deployment,
        lambda p: container(p).pop("livenessProbe"),
        "container app: no livenessProbe",
    ),
    (
        "k8s-readiness-and-liveness-probes",
        STATEFUL_SET,
        good_deployment,
        lambda p: container(p)["readinessProbe"]["httpGet"].update(port=9999.0),
        "container app: readinessProbe checks port 9999, which the container does not declare",
    ),
    (
        "k8s-image-pinned",
        DEPLOYMENT,
        good_deployment,
        lambda p: container(p).update(image="redis:latest"),
        "container app: image redis:latest uses the latest tag; pin a version tag or a digest",
    ),
    (
        "k8s-image-pinned",
        JOB,
        good_deployment,
        lambda p: container(p).update(image="registry.example.com:5000/dataplatform/app"),
        "container app: image registry.example.com:5000/dataplatform/app has no tag (it means latest)",
    ),
    (
        "k8s-image-pinned",
        SPARK_APP,
        lambda: {"spec": {"image": "spark:4.0.1", "driver": {}, "executor": {}}},
        lambda p: p["spec"].update(image="apache/spark"),
        "application: image apache/spark has no tag",
    ),
    (
        "k8s-image-digest",
        DEPLOYMENT,
        good_deployment,
        lambda p: container(p).update(image="registry.example.com/dataplatform/app:0.1.0"),
        "container app: image registry.example.com/dataplatform/app:0.1.0 has no digest; a tag can be "
        "moved to other content, so give it as name@sha256:<digest>",
    ),
    (
        "k8s-image-digest",
        JOB,
        good_deployment,
        lambda p: pod_spec(p).update(initContainers=[{**good_container("init"), "image": "busybox:1.36"}]),
        "init container init: image busybox:1.36 has no digest",
    ),
    (
        "k8s-image-digest",
        STATEFUL_SET,
        good_deployment,
        lambda p: container(p).update(image="registry.example.com/app@sha256:abc"),
        "container app: image registry.example.com/app@sha256:abc has no digest",
    ),
    (
        "k8s-image-digest",
        SPARK_APP,
        lambda: {"spec": {"image": PINNED_IMAGE, "driver": {}, "executor": {}}},
        lambda p: p["spec"].update(image="registry.example.com/dataplatform/spark:0.1.0"),
        "application: image registry.example.com/dataplatform/spark:0.1.0 has no digest",
    ),
    (
        "k8s-image-digest",
        SCHEDULED_SPARK_APP,
        lambda: {"spec": {"template": {"image": PINNED_IMAGE, "driver": {}, "executor": {}}}},
        lambda p: p["spec"]["template"]["executor"].update(image="spark:4.0.1"),
        "executor: image spark:4.0.1 has no digest",
    ),
    (
        "k8s-no-literal-secrets-in-env",
        DEPLOYMENT,
        good_deployment,
        lambda p: container(p)["env"].append({"name": "DB_PASSWORD", "value": "hunter2-but-longer"}),
        "container app: env DB_PASSWORD holds a literal value; use valueFrom.secretKeyRef",
    ),
    (
        "k8s-no-literal-secrets-in-env",
        SPARK_APP,
        lambda: {"spec": {"image": "spark:4.0.1", "driver": {}, "executor": {}}},
        lambda p: p["spec"]["driver"].update(env=[{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]),
        "driver: env AWS_SECRET_ACCESS_KEY holds a literal value",
    ),
    (
        "k8s-no-default-credentials",
        DEPLOYMENT,
        good_deployment,
        lambda p: container(p)["env"].append({"name": "MINIO_ROOT_USER", "value": "minioadmin"}),
        "container app: env MINIO_ROOT_USER is set to the image's well-known default credential",
    ),
    (
        "k8s-service-type",
        SERVICE,
        lambda: {"spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "app"}}},
        lambda p: p["spec"].update(type="LoadBalancer"),
        "Service of type LoadBalancer exposes pods outside the cluster",
    ),
    (
        "docker-ports-on-loopback",
        CONTAINER,
        good_docker_container,
        lambda p: p["ports"][0].pop("ip"),
        "port 8080->8080 is published on 0.0.0.0; bind it to one of 127.0.0.1, ::1",
    ),
    (
        "docker-ports-on-loopback",
        CONTAINER,
        good_docker_container,
        lambda p: p["ports"].append({"internal": 9000.0, "ip": "192.168.1.10"}),
        "port 9000 is published on 192.168.1.10",
    ),
    (
        "docker-health-check",
        CONTAINER,
        good_docker_container,
        lambda p: p.pop("healthcheck"),
        "long-running container has no healthcheck; the engine cannot tell it is serving",
    ),
    (
        "docker-health-check",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(healthcheck={"tests": ["NONE"]}),
        "long-running container has no healthcheck",
    ),
    (
        "docker-bounded-restart-policy",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(restart="unless-stopped"),
        "restart policy unless-stopped restarts forever; use on-failure with maxRetryCount > 0",
    ),
    (
        "docker-bounded-restart-policy",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(maxRetryCount=0.0),
        "restart policy on-failure without maxRetryCount retries forever; set maxRetryCount > 0",
    ),
    (
        "docker-bounded-restart-policy",
        CONTAINER,
        good_docker_container,
        lambda p: p.pop("restart"),
        "long-running container has restart policy no; use on-failure with maxRetryCount > 0",
    ),
    (
        "docker-memory-limit",
        CONTAINER,
        good_docker_container,
        lambda p: p.pop("memory"),
        "no memory limit; set memory (MB)",
    ),
    (
        "docker-non-root-user",
        CONTAINER,
        good_docker_container,
        lambda p: p.pop("user"),
        "no user set; the image's default user (often root) runs the process",
    ),
    (
        "docker-non-root-user",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(user="0:0"),
        "user 0:0 is root; run as a non-root user",
    ),
    (
        "docker-no-new-privileges",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(securityOpts=["apparmor=docker-default"]),
        "securityOpts lacks no-new-privileges:true",
    ),
    (
        "docker-drop-all-capabilities",
        CONTAINER,
        good_docker_container,
        lambda p: p.pop("capabilities"),
        "capabilities.drops must include ALL",
    ),
    (
        "docker-drop-all-capabilities",
        CONTAINER,
        good_docker_container,
        lambda p: p["capabilities"].update(adds=["CAP_SYS_PTRACE"]),
        "adds capabilities SYS_PTRACE; only NET_BIND_SERVICE may be added",
    ),
    (
        "docker-read-only-root-filesystem",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(readOnly=False),
        "root filesystem is writable; set readOnly (tmpfs for scratch paths, files on a volume "
        "filled before start)",
    ),
    (
        "docker-private-secret-files",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(uploads=[{"file": "/run/secrets/password", "content": "x"}]),
        "secret file /run/secrets/password has mode 0644, the default; give permissions 0400 (or 0600)",
    ),
    (
        "docker-private-secret-files",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(
            uploads=[
                {"file": "/run/secrets/password", "content": "x", "permissions": "0440", "owner": "10001"}
            ]
        ),
        "secret file /run/secrets/password has mode 0440; give permissions 0400 (or 0600)",
    ),
    (
        "docker-private-secret-files",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(
            uploads=[{"file": "/run/secrets/password", "content": "x", "permissions": "0400"}]
        ),
        "secret file /run/secrets/password is owned by 0, not by the container's user 10001",
    ),
    (
        "docker-no-privileged-or-host-namespaces",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(privileged=True),
        "runs privileged",
    ),
    (
        "docker-no-privileged-or-host-namespaces",
        CONTAINER,
        good_docker_container,
        lambda p: p.update(networkMode="host"),
        "networkMode is host: the container shares the host's namespace",
    ),
    (
        "docker-no-engine-socket",
        CONTAINER,
        good_docker_container,
        lambda p: p["volumes"].append({"hostPath": "/var/run/docker.sock", "containerPath": "/sock"}),
        "mounts the container engine's socket /var/run/docker.sock, which is root on the host",
    ),
    (
        "docker-no-default-credentials",
        CONTAINER,
        good_docker_container,
        lambda p: p["envs"].append("MINIO_ROOT_PASSWORD=minioadmin"),
        "env MINIO_ROOT_PASSWORD is set to the image's well-known default credential",
    ),
    (
        "docker-no-default-credentials",
        CONTAINER,
        good_docker_container,
        lambda p: p["envs"].append("MINIO_ROOT_USER=minioadmin"),
        "env MINIO_ROOT_USER is set to the image's well-known default credential",
    ),
    (
        "docker-no-default-credentials",
        CONTAINER,
        good_docker_container,
        lambda p: p["envs"].append("GF_SECURITY_ADMIN_PASSWORD=admin"),
        "env GF_SECURITY_ADMIN_PASSWORD is set to the image's well-known default credential",
    ),
    (
        "docker-no-default-credentials",
        CONTAINER,
        good_docker_container,
        lambda p: p["envs"].append("REDIS_PASSWORD="),
        "env REDIS_PASSWORD is empty, which leaves the service without a password",
    ),
    (
        "docker-no-default-credentials",
        CONTAINER,
        good_docker_container,
        lambda p: p["envs"].append("ALLOW_EMPTY_PASSWORD=yes"),
        "env ALLOW_EMPTY_PASSWORD turns authentication off",
    ),
    (
        "docker-no-default-credentials",
        CONTAINER,
        good_docker_container,
        lambda p: p["envs"].append("POSTGRES_PASSWORD=changeme"),
        "env POSTGRES_PASSWORD is set to a well-known default password",
    ),
    (
        "docker-no-literal-secrets-in-env",
        CONTAINER,
        good_docker_container,
        lambda p: p["envs"].append("REDIS_PASSWORD=kL9v2-generated"),
        "env REDIS_PASSWORD holds a credential in plain text (visible to docker inspect); "
        "mount it as a file and pass REDIS_PASSWORD_FILE",
    ),
    (
        "docker-image-pinned",
        REMOTE_IMAGE,
        lambda: {"name": "redis:7.4.5-bookworm", "keepLocally": True},
        lambda p: p.update(name="redis"),
        "image redis has no tag (it means latest); pin a version tag or a digest",
    ),
    (
        "docker-image-pinned",
        IMAGE,
        lambda: {"imageName": "dataplatform/gateway:0.1.0"},
        lambda p: p.update(imageName="dataplatform/gateway:latest"),
        "image dataplatform/gateway:latest uses the latest tag",
    ),
]


def test_image_pins_are_checked_where_images_are_named_not_on_containers() -> None:
    # A container's image is the ID its RemoteImage resolved, unknown in a
    # preview; reading it would make the engine skip the policy noisily.
    container = {**good_docker_container(), "image": "grafana/grafana:latest"}
    assert messages("docker-image-pinned", CONTAINER, container) == []


def _case_id(case: tuple[str, str, Any, Any, str]) -> str:
    return f"{case[0]}:{case[4][:40]}"


@pytest.mark.parametrize("case", BAD, ids=[_case_id(c) for c in BAD])
def test_policy_fires_on_a_bad_resource(case: tuple[str, str, Any, Mutation, str]) -> None:
    rule, resource_type, make, mutate, expected = case
    good = make()
    assert messages(rule, resource_type, copy.deepcopy(good)) == [], "quiet on the good resource"
    bad = copy.deepcopy(good)
    mutate(bad)
    found = messages(rule, resource_type, bad)
    assert any(m.startswith(expected) for m in found), found


def test_every_resource_policy_has_a_bad_case() -> None:
    resource_rules = {r.name for r in RULES if isinstance(r, ResourceRule)}
    assert {case[0] for case in BAD} == resource_rules


GOOD: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    (DEPLOYMENT, good_deployment),
    (SPARK_APP, lambda: {"spec": {"image": PINNED_IMAGE, "driver": {}, "executor": {"image": PINNED_IMAGE}}}),
    (STATEFUL_SET, good_deployment),
    (JOB, good_deployment),
    (POD, good_pod),
    (CRON_JOB, lambda: {"spec": {"jobTemplate": {"spec": {"template": good_pod()}}}}),
    (SERVICE, lambda: {"spec": {"selector": {"app.kubernetes.io/name": "app"}}}),
    (CONTAINER, good_docker_container),
    (CONTAINER, one_shot_container),
    (REMOTE_IMAGE, lambda: {"name": "redis@sha256:" + "cd" * 32}),
    (IMAGE, lambda: {"imageName": "registry.example.com:5000/dataplatform/gateway:0.1.0"}),
]


@pytest.mark.parametrize(("resource_type", "make"), GOOD, ids=[f"{t}-{i}" for i, (t, _) in enumerate(GOOD)])
def test_every_resource_policy_is_quiet_on_good_resources(
    resource_type: str, make: Callable[[], dict[str, Any]]
) -> None:
    for rule in RULES:
        if isinstance(rule, ResourceRule):
            assert rule.validate(resource_type, make()) == [], rule.name


def test_resource_policies_ignore_other_types() -> None:
    deployment, docker_container = good_deployment(), good_docker_container()
    security(deployment).update(privileged=True)
    docker_container.update(privileged=True)
    assert messages("k8s-no-privileged", CONTAINER, deployment) == []
    assert messages("docker-no-privileged-or-host-namespaces", DEPLOYMENT, docker_container) == []


def test_seccomp_may_be_set_on_every_container_instead_of_the_pod() -> None:
    props = good_deployment()
    pod_spec(props)["securityContext"].pop("seccompProfile")
    security(props)["seccompProfile"] = {"type": "RuntimeDefault"}
    assert messages("k8s-seccomp-runtime-default", DEPLOYMENT, props) == []


def test_jobs_need_no_probes() -> None:
    props = good_deployment()
    container(props).pop("readinessProbe")
    container(props).pop("livenessProbe")
    assert messages("k8s-readiness-and-liveness-probes", JOB, props) == []
    assert messages("k8s-readiness-and-liveness-probes", DEPLOYMENT, props) == [
        "container app: no readinessProbe",
        "container app: no livenessProbe",
    ]


def test_config_switches() -> None:
    service = {"spec": {"type": "NodePort"}}
    assert messages("k8s-service-type", SERVICE, service)
    assert messages("k8s-service-type", SERVICE, service, {"allowedServiceTypes": ["NodePort"]}) == []
    docker_container = good_docker_container()
    docker_container["ports"][0]["ip"] = "10.0.0.5"
    assert messages("docker-ports-on-loopback", CONTAINER, docker_container)
    allowed = {"allowedAddresses": ["127.0.0.1", "10.0.0.5"]}
    assert messages("docker-ports-on-loopback", CONTAINER, docker_container, allowed) == []
    ipv6 = good_docker_container()
    ipv6["ports"][0]["ip"] = "::1"
    assert messages("docker-ports-on-loopback", CONTAINER, ipv6) == []
    chart = good_deployment()
    chart["metadata"]["namespace"] = "spark-operator"
    security(chart).clear()
    assert messages("k8s-no-privilege-escalation", DEPLOYMENT, chart)
    excluded = {"excludedNamespaces": ["spark-operator"]}
    assert messages("k8s-no-privilege-escalation", DEPLOYMENT, chart, excluded) == []


def test_messages_never_show_a_secret_value() -> None:
    props = good_docker_container()
    props["envs"] += ["API_TOKEN=tok-5f1e2d", "REDIS_PASSWORD=pw-9a8b7c"]
    deployment = good_deployment()
    container(deployment)["env"].append({"name": "DB_PASSWORD", "value": "pw-1234abcd"})
    found = [v.message for v in evaluate(stack_of((CONTAINER, props), (DEPLOYMENT, deployment)))]
    assert found and not any(s in m for m in found for s in ("tok-5f1e2d", "pw-9a8b7c", "pw-1234abcd"))


# -- stack policies ----------------------------------------------------------


def stack_of(*resources: tuple[str, dict[str, Any]]) -> list[StackResource]:
    return [
        StackResource(t, f"r{i}", props, f"urn:pulumi:test::dataplatform::{t}::r{i}")
        for i, (t, props) in enumerate(resources)
    ]


def stack_messages(rule: str, resources: list[StackResource], config: Any = None) -> list[str]:
    r = RULE[rule]
    assert isinstance(r, StackRule)
    return [f.message for f in r.validate(resources, config)]


def network_policy(selector: dict[str, Any], namespace: str = "dataplatform") -> dict[str, Any]:
    return {
        "metadata": {"name": "np", "namespace": namespace},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress", "Egress"]},
    }


def test_network_policy_coverage() -> None:
    app = (DEPLOYMENT, good_deployment())
    expected = f"{DEPLOYMENT} app: no NetworkPolicy in namespace dataplatform selects its pods"
    assert stack_messages("k8s-network-policy-coverage", stack_of(app)) == [expected]
    other = network_policy({"matchLabels": {"app.kubernetes.io/name": "other"}})
    assert stack_messages("k8s-network-policy-coverage", stack_of(app, (NETWORK_POLICY, other))) == [expected]
    elsewhere = network_policy({}, namespace="default")
    assert stack_messages("k8s-network-policy-coverage", stack_of(app, (NETWORK_POLICY, elsewhere))) == [
        expected
    ]
    default_deny = network_policy({})
    assert stack_messages("k8s-network-policy-coverage", stack_of(app, (NETWORK_POLICY, default_deny))) == []
    own = network_policy(
        {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["app"]}]}
    )
    assert stack_messages("k8s-network-policy-coverage", stack_of(app, (NETWORK_POLICY, own))) == []


def hpa(target: str) -> dict[str, Any]:
    return {
        "metadata": {"name": target, "namespace": "dataplatform"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}},
    }


def pdb(target: str, **budget: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": target, "namespace": "dataplatform"},
        "spec": (budget or {"maxUnavailable": 1})
        | {"selector": {"matchLabels": {"app.kubernetes.io/name": target}}},
    }


def test_a_budget_that_blocks_every_drain() -> None:
    redis = (DEPLOYMENT, good_deployment("redis"))
    blocked = "PodDisruptionBudget redis: no pod of Deployment redis (1 replicas) may ever be evicted"
    for budget in ({"minAvailable": 1}, {"maxUnavailable": 0}, {"minAvailable": "100%"}):
        [message] = stack_messages(
            "k8s-pod-disruption-budget", stack_of(redis, (PDB, pdb("redis", **budget)))
        )
        assert message.startswith(blocked), budget
    for budget in ({"maxUnavailable": 1}, {"minAvailable": 0}, {"minAvailable": "50%"}):
        assert (
            stack_messages("k8s-pod-disruption-budget", stack_of(redis, (PDB, pdb("redis", **budget)))) == []
        )
    # minAvailable 1 of an HPA's minimum of 2 lets one pod go.
    gateway = good_deployment("gateway")
    gateway["spec"].pop("replicas", None)
    two = hpa("gateway") | {"spec": hpa("gateway")["spec"] | {"minReplicas": 2}}
    scaled = stack_of((DEPLOYMENT, gateway), (HPA, two), (PDB, pdb("gateway", minAvailable=1)))
    assert stack_messages("k8s-pod-disruption-budget", scaled) == []


def test_autoscalers_and_disruption_budgets() -> None:
    gateway, inference = (DEPLOYMENT, good_deployment("gateway")), (DEPLOYMENT, good_deployment("inference"))
    bare = stack_of(gateway, inference, (DEPLOYMENT, good_deployment("redis")))
    assert stack_messages("k8s-horizontal-pod-autoscaler", bare) == [
        "Deployment gateway: no HorizontalPodAutoscaler targets it",
        "Deployment inference: no HorizontalPodAutoscaler targets it",
    ]
    assert stack_messages("k8s-pod-disruption-budget", bare) == [
        "Deployment gateway: no PodDisruptionBudget selects its pods",
        "Deployment inference: no PodDisruptionBudget selects its pods",
    ]
    wrong = stack_of(gateway, (HPA, hpa("inference")), (PDB, pdb("inference")))
    assert stack_messages("k8s-horizontal-pod-autoscaler", wrong) == [
        "Deployment gateway: no HorizontalPodAutoscaler targets it"
    ]
    assert stack_messages("k8s-pod-disruption-budget", wrong) == [
        "Deployment gateway: no PodDisruptionBudget selects its pods"
    ]
    full = stack_of(gateway, inference, (HPA, hpa("gateway")), (HPA, hpa("inference")))
    full += stack_of((PDB, pdb("gateway")), (PDB, pdb("inference")))
    assert stack_messages("k8s-horizontal-pod-autoscaler", full) == []
    assert stack_messages("k8s-pod-disruption-budget", full) == []
    # Configurable, and quiet where the workloads are not declared (the dev stack).
    assert stack_messages("k8s-horizontal-pod-autoscaler", bare, {"workloads": ["redis"]}) == [
        "Deployment redis: no HorizontalPodAutoscaler targets it"
    ]
    assert (
        stack_messages("k8s-horizontal-pod-autoscaler", stack_of((CONTAINER, good_docker_container()))) == []
    )


def test_service_selects_pods() -> None:
    app = (DEPLOYMENT, good_deployment())
    service = {"metadata": {"name": "app", "namespace": "dataplatform"}, "spec": {"selector": {}}}
    service["spec"]["selector"] = {"app.kubernetes.io/name": "app"}
    assert stack_messages("k8s-service-selects-pods", stack_of(app, (SERVICE, service))) == []
    service["spec"]["selector"] = {"app.kubernetes.io/name": "ap"}
    assert stack_messages("k8s-service-selects-pods", stack_of(app, (SERVICE, service))) == [
        "Service app: its selector matches no declared pod"
    ]
    # Where the stack declares no pod (a chart's namespace before the chart
    # is rendered), it cannot tell.
    service["metadata"]["namespace"] = "elsewhere"
    assert stack_messages("k8s-service-selects-pods", stack_of(app, (SERVICE, service))) == []


def test_stack_violations_name_the_resource() -> None:
    found = evaluate(stack_of((DEPLOYMENT, good_deployment())))
    assert {(v.policy, v.resource) for v in found} == {("k8s-network-policy-coverage", "r0")}


# -- shared helpers --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("REDIS_PASSWORD", True),
        ("DBPASSWORD", True),
        ("API_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("GATEWAY_API_KEYS", True),
        ("RABBITMQ_DEFAULT_PASS", True),
        ("REDIS_PASSWORD_FILE", False),
        ("GF_SECURITY_ADMIN_PASSWORD__FILE", False),
        ("GATEWAY_API_KEYS_FILE", False),
        ("SECRETS_DIR", False),
        ("HF_TOKENIZER", False),
        ("MINIO_PROMETHEUS_AUTH_TYPE", False),
        ("MONKEY_MODE", False),
        ("GF_SECURITY_ADMIN_USER", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("redis:7.4.5-bookworm", True),
        ("registry.example.com:5000/dataplatform/gateway:0.1.0", True),
        ("redis@sha256:" + "0" * 64, True),
        ("sha256:" + "ab" * 32, True),
        ("redis", False),
        ("redis:latest", False),
        ("registry.example.com:5000/dataplatform/gateway", False),
        ("", False),
        (None, False),
    ],
)
def test_image_pinning(image: Any, pinned: bool) -> None:
    assert (image_pin_problem(image) is None) is pinned


def test_label_selectors() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels)
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "db"}}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, labels
    )


# -- the whole pack over both stacks ------------------------------------------


def declared(recorder: Recorder, stack: str) -> list[StackResource]:
    """Every resource the program registered, as the engine hands it to the pack."""
    return [
        StackResource(r.typ, r.name, unwrap(r.inputs), f"urn:pulumi:{stack}::dataplatform::{r.typ}::{r.name}")
        for r in recorder.resources
    ]


# The prod stack's workloads that run pods of their own: its Deployments and
# MinIO's setup Job.
PROD_POD_WORKLOADS = frozenset(
    {
        "redis",
        "minio",
        "minio-init",
        "inference",
        "gateway",
        "prometheus",
        "grafana",
        "alertmanager",
        "spark-history",
    }
)


def by_level(found: list[Violation], level: Enforcement) -> set[tuple[str, str]]:
    return {(v.policy, v.resource) for v in found if v.enforcement is level}


def test_pack_over_the_dev_stack(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    resources = declared(recorder, "dev")
    assert len(resources) == 77
    # Twelve running containers and nine carriers of files.
    assert sum(r.type == CONTAINER for r in resources) == 21
    found = evaluate(resources)
    assert by_level(found, Enforcement.MANDATORY) == set()
    assert by_level(found, Enforcement.ADVISORY) == set()


def test_carriers_are_exempt_from_read_only_but_not_from_private_secrets() -> None:
    carrier = {
        **good_docker_container(),
        "start": False,
        "mustRun": False,
        "restart": "no",
        "readOnly": False,
        "uploads": [
            {
                "file": "/run/secrets/password",
                "content": "x",
                "permissions": "0400",
                "owner": "10001",
                "group": "10001",
            },
            {
                "file": "/etc/app/app.yml",
                "content": "a: 1",
                "permissions": "0444",
                "owner": "10001",
                "group": "10001",
            },
        ],
    }
    for rule in ("docker-read-only-root-filesystem", "docker-private-secret-files", "docker-health-check"):
        assert messages(rule, CONTAINER, carrier) == [], rule
    carrier["uploads"][0]["permissions"] = "0644"
    assert messages("docker-private-secret-files", CONTAINER, carrier)
    # A container that runs is not exempt.
    assert messages("docker-read-only-root-filesystem", CONTAINER, {**carrier, "start": True})


def test_pack_over_the_prod_stack(prod: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = prod
    resources = declared(recorder, "prod")
    # 85, the two NetworkPolicies closing the Spark Operator's namespace, and
    # a PodDisruptionBudget for each of the five single-replica workloads,
    # the read of the API server's EndpointSlice, and the jobs namespace: the
    # namespace, its default-deny policy, the executors' service account, the
    # admission policy on what drivers create and its binding; then the
    # weekly vacuum job (its component and ScheduledSparkApplication), and
    # the History Server (its component, Deployment,
    # Service, disruption budget, network policy, files' Secret and its
    # MinIO user's two credentials); and for Prometheus to find Spark's
    # drivers and the operator's controller, a headless Service and an
    # ingress policy beside each; and the streaming job (its component and
    # SparkApplication), on by default in prod.
    assert len(resources) == 114
    workloads = [r for r in resources if r.type in (DEPLOYMENT, JOB)]
    assert len(workloads) == 9
    found = evaluate(resources)
    assert by_level(found, Enforcement.MANDATORY) == set()
    assert by_level(found, Enforcement.ADVISORY) == set()


def test_pack_flags_ports_published_on_every_interface() -> None:
    recorder, _ = run_stack("dev", {"bindAddress": "0.0.0.0"})
    found = evaluate(declared(recorder, "dev"))
    published = {
        "redis",
        "minio",
        "spark-master",
        "inference",
        "gateway",
        "prometheus",
        "grafana",
        "alertmanager",
        "spark-history",
    }
    assert by_level(found, Enforcement.MANDATORY) == {("docker-ports-on-loopback", n) for n in published}


def test_pack_flags_an_exposed_gateway_unless_allowed() -> None:
    recorder, _ = run_stack(
        "prod", {"gateway": {"replicas": 2, "maxReplicas": 8, "serviceType": "LoadBalancer"}}
    )
    resources = declared(recorder, "prod")
    assert by_level(evaluate(resources), Enforcement.ADVISORY) == {("k8s-service-type", "gateway")}
    allowed = {"k8s-service-type": {"allowedServiceTypes": ["LoadBalancer"]}}
    assert evaluate(resources, allowed) == []


def test_pack_catches_a_regression_in_the_kubernetes_target(monkeypatch: pytest.MonkeyPatch) -> None:
    original = KubernetesTarget._pod_spec

    def host_network(self: KubernetesTarget, *args: Any, **kwargs: Any) -> dict[str, Any]:
        spec = original(self, *args, **kwargs)
        spec["hostNetwork"] = True
        spec["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")
        return spec

    monkeypatch.setattr(KubernetesTarget, "_pod_spec", host_network)
    recorder, _ = run_stack("prod")
    mandatory = by_level(evaluate(declared(recorder, "prod")), Enforcement.MANDATORY)
    assert mandatory == {
        (policy, name)
        for policy in ("k8s-no-host-namespaces", "k8s-no-privilege-escalation")
        for name in PROD_POD_WORKLOADS
    }


def test_pack_rejects_prod_images_that_are_not_pinned_by_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    # The platform pins every prod image before it declares anything; with
    # that step skipped, the pack stops the preview at each workload.
    monkeypatch.setattr(platform_module, "pin", lambda settings, specs: settings)
    recorder, _ = run_stack("prod")
    mandatory = by_level(evaluate(declared(recorder, "prod")), Enforcement.MANDATORY)
    spark_jobs = {"features-nightly", "train-nightly", "lake-vacuum", STREAM_NAME}
    assert mandatory == {("k8s-image-digest", name) for name in PROD_POD_WORKLOADS | spark_jobs}


# -- the pack's entry point and documentation ----------------------------


def test_main_builds_the_pack_from_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    packs: list[dict[str, Any]] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: packs.append(kwargs))
    runpy.run_path(str(POLICY_DIR), run_name="__main__")
    assert len(packs) == 1
    pack = packs[0]
    assert pack["name"] == "dataplatform"
    policies = pack["policies"]
    assert [p.name for p in policies] == [r.name for r in RULES]
    assert len(set(RULE)) == len(RULES)
    for policy in policies:
        assert policy.enforcement_level.value == RULE[policy.name].enforcement.value, policy.name
        kind = pulumi_policy.ResourceValidationPolicy
        assert isinstance(policy, kind) is isinstance(RULE[policy.name], ResourceRule)


def test_pack_project_files() -> None:
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    venv = POLICY_DIR / project["runtime"]["options"]["virtualenv"]
    assert venv.resolve() == ROOT / ".venv"

    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return dict(line.split("==", 1) for line in lines if "==" in line)

    pack = pins(POLICY_DIR / "requirements.txt")
    dev = pins(ROOT / "requirements-dev.txt")
    program = pins(ROOT / "requirements.txt")
    assert pack["pulumi-policy"] == dev["pulumi-policy"] == pulumi_policy_version()
    assert pack["pulumi"] == program["pulumi"]


def test_pack_answers_the_engine_over_grpc() -> None:
    """The pack as the engine runs it: a process that prints its port and
    serves the analyzer protocol on loopback."""
    process = subprocess.Popen(
        [sys.executable, "-u", "."], cwd=POLICY_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().decode().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == "dataplatform"
            assert {p.name for p in info.policies} == set(RULE)
            props = struct_pb2.Struct()
            props.update({"user": "root", "envs": ["MINIO_ROOT_USER=minioadmin"], "memory": 64})
            request = analyzer_pb2.AnalyzeRequest(
                type=CONTAINER, properties=props, urn="urn:pulumi:dev::dataplatform::x::web", name="web"
            )
            reply = stub.Analyze(request, timeout=30)
    finally:
        process.kill()
        process.wait()
    reported = {d.policyName for d in reply.diagnostics}
    assert {"docker-non-root-user", "docker-no-default-credentials"} <= reported
    assert "docker-memory-limit" not in reported


def pulumi_policy_version() -> str:
    from importlib.metadata import version

    return version("pulumi-policy")


def test_readme_lists_every_policy_with_its_level() -> None:
    readme = (POLICY_DIR / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (mandatory|advisory) \|", readme, re.M)
    assert dict(rows) == {r.name: r.enforcement.value for r in RULES}
    assert len(rows) == len(RULES)
    assert "pulumi preview --stack prod --policy-pack policy" in readme
