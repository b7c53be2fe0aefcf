"""The dev stack as declared: containers on one Docker engine."""

from __future__ import annotations

import json
from typing import Any

import pulumi_docker
import pytest

from dataplatform.monitoring import dashboard
from dataplatform.platform import DataPlatform
from tools.harness import Recorder, generated_secrets, is_secret, run_stack, unwrap

CONTAINER = "docker:index/container:Container"
SERVICES = {
    "redis": 6379,
    "minio": 9000,
    "spark-master": 7077,
    "inference": 3000,
    "gateway": 8080,
    "prometheus": 9090,
    "grafana": 3000,
}
USERS = {
    "redis": "999:999",
    "minio": "1000:1000",
    "minio-init": "1000:1000",
    "spark-master": "185:185",
    "spark-worker-1": "185:185",
    "spark-worker-2": "185:185",
    "spark-history": "185:185",
    "inference": "10001:10001",
    "gateway": "10001:10001",
    "prometheus": "65534:65534",
    "grafana": "472:472",
    "alertmanager": "65534:65534",
}
# Workloads that receive files, each through a carrier container.
WITH_FILES = {"redis", "minio", "minio-init", "inference", "gateway", "prometheus", "grafana", "alertmanager"}
WITH_FILES |= {"spark-history"}


def all_containers(recorder: Recorder) -> dict[str, dict[str, Any]]:
    return {r.name: unwrap(r.inputs) for r in recorder.of_type(CONTAINER)}


def containers(recorder: Recorder) -> dict[str, dict[str, Any]]:
    """The containers that run, by name (carriers are created, never started)."""
    return {n: c for n, c in all_containers(recorder).items() if c.get("start") is not False}


def carriers(recorder: Recorder) -> dict[str, dict[str, Any]]:
    """Carrier containers by the workload they fill."""
    return {
        n.removesuffix("-files"): c for n, c in all_containers(recorder).items() if c.get("start") is False
    }


def files(recorder: Recorder) -> dict[str, dict[str, str]]:
    """Each workload's files: path -> content."""
    return {
        n: {u["file"]: u["content"] for u in c.get("uploads") or []} for n, c in carriers(recorder).items()
    }


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.get("envs", []))


def test_inventory(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    assert set(containers(recorder)) == set(USERS)
    assert len(recorder.of_type("docker:index/network:Network")) == 1
    volumes = {r.inputs["name"] for r in recorder.of_type("docker:index/volume:Volume")}
    data = {v for v in volumes if v.endswith("-data")}
    assert data == {
        "dataplatform-dev-redis-data",
        "dataplatform-dev-minio-data",
        "dataplatform-dev-prometheus-data",
        "dataplatform-dev-grafana-data",
        "dataplatform-dev-alertmanager-data",
    }
    # One volume per directory of files: grafana has four, minio-init two.
    assert len(volumes - data) == len(WITH_FILES) + 3 + 1
    assert set(carriers(recorder)) == WITH_FILES
    built = {r.inputs["imageName"] for r in recorder.of_type("docker:index/image:Image")}
    assert built == {
        "dataplatform/spark:0.1.0",
        "dataplatform/minio:0.1.0",
        "dataplatform/gateway:0.1.0",
        "dataplatform/inference:0.1.0",
    }
    # Five Redis users, two MinIO root and six MinIO user credentials, the
    # gateway key, Grafana's admin password.
    assert len(recorder.of_type("random:index/randomPassword:RandomPassword")) == 15
    components = {r.typ for r in recorder.resources if not r.custom}
    assert {
        "dataplatform:index:DataPlatform",
        "dataplatform:index:Redis",
        "dataplatform:index:Minio",
        "dataplatform:index:Spark",
        "dataplatform:index:Inference",
        "dataplatform:index:Gateway",
        "dataplatform:index:Prometheus",
        "dataplatform:index:Grafana",
        "dataplatform:index:Alertmanager",
    } <= components


def test_every_published_port_is_on_loopback_and_distinct(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    published: list[int] = []
    for name, c in containers(recorder).items():
        for port in c.get("ports") or []:
            assert port["ip"] == "127.0.0.1", name
            published.append(int(port["external"]))
    assert len(published) == len(set(published))
    by_name = {
        n: {int(p["internal"]): int(p["external"]) for p in c.get("ports") or []}
        for n, c in containers(recorder).items()
    }
    # Container ports as the platform's port table gives them (README);
    # host ports moved where two services share one.
    assert by_name["gateway"] == {8080: 8080}
    assert by_name["spark-master"] == {7077: 7077, 8080: 8081}
    assert by_name["inference"] == {3000: 3000}
    assert by_name["grafana"] == {3000: 3001}
    assert by_name["minio"] == {9000: 9000, 9001: 9001}
    assert by_name["spark-worker-1"] == {} and by_name["minio-init"] == {}


def test_container_hardening(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    for name, c in containers(recorder).items():
        assert c["user"] == USERS[name], name
        assert c["capabilities"] == {"drops": ["ALL"]}, name
        assert "no-new-privileges:true" in c["securityOpts"], name
        assert 0 < c["memory"] <= 4096, name
        assert c["image"].startswith("sha256:"), name
        assert c["logOpts"]["max-size"] == "10m"
        assert "/tmp" in c["tmpfs"]
        # Files arrive on volumes mounted read-only, never into the root.
        assert c["readOnly"] is True and not c.get("uploads"), name


def test_files_arrive_through_never_started_carriers(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    running = containers(recorder)
    for workload, carrier in carriers(recorder).items():
        assert carrier["mustRun"] is False and carrier["restart"] == "no", workload
        assert carrier["user"] == USERS[workload] and carrier["capabilities"] == {"drops": ["ALL"]}
        uid, gid = USERS[workload].split(":")
        for upload in carrier["uploads"]:
            assert (upload["owner"], upload["group"]) == (uid, gid), (workload, upload["file"])
            secret = upload["file"].startswith("/run/secrets/")
            assert upload["permissions"] == ("0400" if secret else "0444"), (workload, upload["file"])
        filled = {v["volumeName"]: v["containerPath"] for v in carrier["volumes"]}
        service = running[workload]
        mounted = {v["volumeName"]: v for v in service["volumes"] if v["volumeName"] in filled}
        assert set(mounted) == set(filled), workload
        assert all(v["readOnly"] is True for v in mounted.values()), workload
        assert {v["volumeName"]: v["containerPath"] for v in mounted.values()} == filled
        # A changed file changes this label, which replaces the container.
        labels = {label["label"]: label["value"] for label in service["labels"]}
        assert len(labels["dataplatform.files-digest"]) == 64


def test_long_running_containers_are_health_checked_and_restarted_boundedly(
    dev: tuple[Recorder, DataPlatform],
) -> None:
    recorder, _ = dev
    for name, c in containers(recorder).items():
        if name == "minio-init":
            assert c["restart"] == "no" and c["mustRun"] is False and c["attach"] is True
            continue
        assert c["healthcheck"]["tests"][0] == "CMD", name
        assert c["restart"] == "on-failure" and c["maxRetryCount"] == 5, name
        assert c["wait"] is True, name


def test_services_find_each_other_by_name(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    cs = containers(recorder)
    for name, c in cs.items():
        aliases = c["networksAdvanced"][0]["aliases"]
        assert name.rsplit("-", 1)[0] in aliases or name in aliases
    assert env_of(cs["gateway"])["GATEWAY_UPSTREAM_URL"] == "http://inference:3000"
    assert env_of(cs["gateway"])["GATEWAY_REDIS_URL"] == "redis://redis:6379/1"
    assert env_of(cs["inference"])["INFERENCE_S3_ENDPOINT"] == "http://minio:9000"
    assert env_of(cs["inference"])["INFERENCE_REDIS_URL"] == "redis://redis:6379/0"
    worker = cs["spark-worker-1"]
    assert worker["command"][-1] == "spark://spark-master:7077"
    assert worker["entrypoints"] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]


def test_secrets_are_files_never_env(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    secrets = generated_secrets(recorder)
    for r in recorder.of_type(CONTAINER):
        c = unwrap(r.inputs)
        for entry in c.get("envs", []):
            assert not any(s in entry for s in secrets), (r.name, entry)
        for arg in (c.get("command") or []) + (c.get("entrypoints") or []):
            assert not any(s in arg for s in secrets), (r.name, arg)
        for label in c.get("labels") or []:
            assert not any(s in label["value"] for s in secrets), (r.name, label)
        # Upload contents that hold a credential stay Pulumi secrets.
        uploads = c.get("uploads") or []
        if any(any(s in u["content"] for s in secrets) for u in uploads):
            assert is_secret(r.inputs["uploads"]), r.name


def test_least_privilege_credentials(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    files_of = files(recorder)
    # Only MinIO and its init task know the root credentials.
    root = files_of["minio"]["/run/secrets/root-password"]
    holders = {n for n, f in files_of.items() if root in f.values()}
    assert holders == {"minio", "minio-init"}
    # Inference's MinIO user may only read the models bucket.
    policy = files_of["minio-init"]["/etc/minio-init/inference.json"]
    assert '"arn:aws:s3:::models"' in policy and "s3:PutObject" not in policy
    assert "raw" not in policy
    spark_policy = files_of["minio-init"]["/etc/minio-init/spark.json"]
    assert "s3:PutObject" in spark_policy
    assert "minioadmin" not in str(files_of)
    # The gateway holds no S3 credential at all.
    assert not any("s3" in path for path in files_of["gateway"])
    # Each Redis client holds its own user's password and no other.
    redis_passwords = {
        name: files_of[name]["/run/secrets/redis-password"] for name in ("gateway", "inference")
    }
    assert len(set(redis_passwords.values())) == 2
    assert env_of(containers(recorder)["gateway"])["GATEWAY_REDIS_USERNAME"] == "gateway"
    assert env_of(containers(recorder)["inference"])["INFERENCE_REDIS_USERNAME"] == "inference"


def test_redis_has_one_user_per_client_and_persists(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    c = containers(recorder)["redis"]
    conf = files(recorder)["redis"]["/run/secrets/redis.conf"]
    assert "appendonly yes" in conf and "requirepass" not in conf
    assert "user default off" in conf
    for user in ("gateway", "inference", "spark", "health", "admin"):
        assert f"\nuser {user} on #" in conf, user
    # Password digests only: no generated password appears in clear.
    assert not any(s in conf for s in generated_secrets(recorder))
    # 45% of the 512Mi limit: room for an AOF rewrite's copy-on-write.
    assert f"maxmemory {int(512 * 1024 * 1024 * 0.45)}" in conf
    assert "maxmemory-policy volatile-lru" in conf
    data = [v for v in c["volumes"] if not v.get("readOnly")]
    assert data == [{"volumeName": "dataplatform-dev-redis-data", "containerPath": "/data"}]


def test_minio_creates_the_platform_buckets(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    env = env_of(containers(recorder)["minio-init"])
    assert env["MINIO_BUCKETS"].split(",") == ["raw", "lake", "models", "spark-events"]
    assert env["MINIO_INIT_USERS"] == "inference,spark,spark-history"


def test_prometheus_scrapes_every_declared_metrics_endpoint(dev: tuple[Recorder, DataPlatform]) -> None:
    _recorder, platform = dev
    import yaml

    config = yaml.safe_load(platform.services["prometheus"].config)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {
        "prometheus",
        "minio",
        "spark-master",
        "spark-worker",
        "inference",
        "gateway",
        "alertmanager",
    }
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]}
    assert jobs["gateway"]["dns_sd_configs"][0] == {
        "names": ["gateway"],
        "type": "A",
        "port": 8080,
        "refresh_interval": "30s",
    }
    assert jobs["minio"]["metrics_path"] == "/minio/v2/metrics/cluster"


def test_grafana_is_provisioned_from_repo_files(dev: tuple[Recorder, DataPlatform]) -> None:
    recorder, _ = dev
    c = containers(recorder)["grafana"]
    grafana_files = files(recorder)["grafana"]
    assert json.loads(grafana_files["/etc/grafana/dashboards/platform.json"]) == dashboard.as_dict()
    datasource = grafana_files["/etc/grafana/provisioning/datasources/prometheus.yaml"]
    assert "url: http://prometheus:9090" in datasource
    assert env_of(c)["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/admin-password"


def test_dependencies_order_startup(dev: tuple[Recorder, DataPlatform]) -> None:
    # Containers wait for health, so declaration order is start order; the
    # gateway is declared after inference and Redis.
    recorder, _ = dev
    order = [r.name for r in recorder.of_type(CONTAINER) if not r.name.endswith("-files")]
    assert order.index("redis") < order.index("inference") < order.index("gateway")
    assert order.index("minio") < order.index("minio-init") < order.index("inference")


@pytest.mark.parametrize("purge", [False, True])
def test_volumes_survive_destroy_unless_purged(monkeypatch: pytest.MonkeyPatch, purge: bool) -> None:
    seen: list[bool | None] = []
    original = pulumi_docker.Volume.__init__

    def capture(self: Any, resource_name: str, *args: Any, **kwargs: Any) -> None:
        opts = kwargs.get("opts")
        seen.append((resource_name, opts.retain_on_delete if opts else None))
        original(self, resource_name, *args, **kwargs)

    monkeypatch.setattr(pulumi_docker.Volume, "__init__", capture)
    run_stack("dev", {"purgeOnDestroy": purge})
    data = [retain for name, retain in seen if name.endswith("-data")]
    assert len(data) == 5 and all(retain is (not purge) for retain in data)
    # Volumes of generated files go with the stack.
    assert all(not retain for name, retain in seen if "-files-" in name)


def test_the_stream_is_off_by_default_in_dev_and_a_restarted_container_when_on() -> None:
    recorder, _ = run_stack("dev")
    assert "job-features-stream" not in containers(recorder)
    recorder, _ = run_stack("dev", {"spark": {"streaming": {"enabled": True, "triggerSeconds": 3}}})
    stream = containers(recorder)["job-features-stream"]
    assert stream["entrypoints"][-5:] == [
        "features_stream",
        "--trigger-seconds",
        "3",
        "--max-files-per-trigger",
        "100",
    ]
    # Long-running: up until stopped, restarted when it fails, healthy once
    # its driver's UI answers; its UI is not published on the host.
    assert stream["mustRun"] is True
    assert stream["restart"] == "on-failure"
    # Idle executors go, even with shuffle files, so batch jobs get the cores back.
    assert "spark.dynamicAllocation.shuffleTracking.timeout=30s" in stream["entrypoints"]
    assert "4040/api/v1/applications" in " ".join(stream["healthcheck"]["tests"])
    assert not stream.get("ports")


def test_spark_job_in_dev_is_a_one_shot_submit() -> None:
    recorder, _ = run_stack(
        "dev",
        {"sparkJobs": [{"name": "counts", "job": "event_counts", "args": ["--input", "s3a://raw/x.csv"]}]},
    )
    job = containers(recorder)["job-counts"]
    assert job["entrypoints"][:3] == ["spark-submit", "--master", "spark://spark-master:7077"]
    assert job["entrypoints"][-4:] == [
        "/opt/dataplatform/jobs/run.py",
        "event_counts",
        "--input",
        "s3a://raw/x.csv",
    ]
    assert "spark.dynamicAllocation.shuffleTracking.enabled=true" in job["entrypoints"]
    assert job["mustRun"] is False
    assert set(files(recorder)["job-counts"]) == {
        "/run/secrets/s3-access-key",
        "/run/secrets/s3-secret-key",
        "/run/secrets/redis-password",
    }


def test_workers_scale_with_config() -> None:
    recorder, _ = run_stack("dev", {"spark": {"workers": 4}})
    names = {r.name for r in recorder.of_type(CONTAINER)}
    assert {f"spark-worker-{i}" for i in range(1, 5)} <= names


def test_grafana_can_be_left_out() -> None:
    recorder, platform = run_stack("dev", {"grafana": {"enabled": False}})
    names = set(containers(recorder))
    assert names == set(USERS) - {"grafana"}
    assert "grafana" not in platform.services
    volumes = {r.inputs["name"] for r in recorder.of_type("docker:index/volume:Volume")}
    assert not any("grafana" in v for v in volumes)
    passwords = recorder.of_type("random:index/randomPassword:RandomPassword")
    assert not [r for r in passwords if "grafana" in r.name]
