"""Both tiers declare the same services with the same contracts."""

from __future__ import annotations

from typing import Any

from dataplatform.platform import DataPlatform
from tools.harness import Recorder, unwrap


def dev_services(recorder: Recorder) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    containers = {r.name: unwrap(r.inputs) for r in recorder.of_type("docker:index/container:Container")}
    for c in containers.values():
        if c.get("start") is False:
            continue  # a carrier: it fills the workload's file volumes
        name = c["networksAdvanced"][0]["aliases"][0]
        carrier = containers.get(f"{name}-files", {})
        out.setdefault(
            name,
            {
                "env": dict(e.split("=", 1) for e in c.get("envs", [])),
                "files": sorted(u["file"] for u in carrier.get("uploads") or []),
                "ports": sorted(int(p["internal"]) for p in c.get("ports") or []),
                "user": c["user"],
            },
        )
    return out


def prod_services(recorder: Recorder) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    kinds = recorder.of_type("kubernetes:apps/v1:Deployment") + recorder.of_type("kubernetes:batch/v1:Job")
    for r in kinds:
        spec = unwrap(r.inputs)["spec"]["template"]["spec"]
        c = spec["containers"][0]
        files = []
        for mount in c["volumeMounts"]:
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            source = volume.get("secret") or volume.get("configMap")
            if source:
                files += [f"{mount['mountPath']}/{i['path']}" for i in source["items"]]
        out[r.name] = {
            "env": {e["name"]: e["value"] for e in c.get("env", [])},
            "files": sorted(files),
            "ports": sorted(int(p["containerPort"]) for p in c["ports"]),
            "user": "{}:{}".format(
                int(spec["securityContext"]["runAsUser"]), int(spec["securityContext"]["runAsGroup"])
            ),
        }
    return out


SHARED = {"redis", "minio", "minio-init", "inference", "gateway", "prometheus", "grafana", "alertmanager"}
SHARED |= {"spark-history"}


# Set only where the gateway is behind an Ingress with TLS, which dev has not.
BEHIND_AN_INGRESS = {"GATEWAY_HTTPS_REDIRECT"}


def test_same_services_ports_users_env_and_files(
    dev: tuple[Recorder, DataPlatform], prod: tuple[Recorder, DataPlatform]
) -> None:
    d, p = dev_services(dev[0]), prod_services(prod[0])
    assert set(d) >= SHARED and set(p) == SHARED
    for name in SHARED:
        # Dev publishes only some ports; every published one exists in prod.
        assert set(d[name]["ports"]) <= set(p[name]["ports"]), name
        assert d[name]["user"] == p[name]["user"], name
        assert d[name]["files"] == p[name]["files"], name
        assert set(d[name]["env"]) == set(p[name]["env"]) - BEHIND_AN_INGRESS, name


def test_service_to_service_contracts_match(
    dev: tuple[Recorder, DataPlatform], prod: tuple[Recorder, DataPlatform]
) -> None:
    d, p = dev_services(dev[0]), prod_services(prod[0])
    for name, var in [
        ("gateway", "GATEWAY_UPSTREAM_URL"),
        ("gateway", "GATEWAY_REDIS_URL"),
        ("inference", "INFERENCE_S3_ENDPOINT"),
        ("inference", "INFERENCE_REDIS_URL"),
        ("inference", "INFERENCE_MODELS_BUCKET"),
        ("minio-init", "MINIO_BUCKETS"),
    ]:
        assert d[name]["env"][var] == p[name]["env"][var], (name, var)


def test_prometheus_scrapes_the_same_jobs_except_each_tiers_spark(
    dev: tuple[Recorder, DataPlatform], prod: tuple[Recorder, DataPlatform]
) -> None:
    import yaml

    dev_config = yaml.safe_load(dev[1].services["prometheus"].config)
    prod_config = yaml.safe_load(prod[1].services["prometheus"].config)
    dev_jobs = {j["job_name"] for j in dev_config["scrape_configs"]}
    prod_jobs = {j["job_name"] for j in prod_config["scrape_configs"]}
    # Dev: the standalone cluster's daemons. Prod: the drivers (their
    # executors' metrics) and the operator.
    assert dev_jobs - prod_jobs == {"spark-master", "spark-worker"}
    assert prod_jobs - dev_jobs == {"spark-drivers", "spark-operator"}
