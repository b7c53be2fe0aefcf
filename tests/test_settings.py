"""Every configuration error stops the program with a message that names the
key, the bad value and what is allowed, before any resource is declared."""

from __future__ import annotations

from typing import Any

import pytest

from dataplatform.config import SettingsError
from dataplatform.services.catalog import SERVICES
from dataplatform.services.spark import CONFIG as SPARK
from dataplatform.settings import parse_settings
from tools.harness import Recorder, run_stack


def error_for(raw: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw, SERVICES)
    return str(caught.value)


def test_defaults_are_valid() -> None:
    settings = parse_settings({}, SERVICES)
    assert settings.target.value == "docker"
    assert settings.bind_address == "127.0.0.1"
    assert settings.purge_on_destroy is False


def test_unknown_target() -> None:
    message = error_for({"target": "aws"})
    assert "dataplatform:target" in message
    assert '"aws"' in message
    assert "'docker' or 'kubernetes'" in message


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"spark": {"workers": 0}}, "dataplatform:spark.workers"),
        ({"gateway": {"replicas": 0}}, "dataplatform:gateway.replicas"),
        ({"inference": {"replicas": -1}}, "dataplatform:inference.replicas"),
    ],
)
def test_counts_below_one(raw: dict[str, Any], key: str) -> None:
    message = error_for(raw)
    assert key in message
    assert "greater than or equal to 1" in message


@pytest.mark.parametrize(
    ("raw", "key", "value"),
    [
        ({"spark": {"workerMemory": "lots"}}, "dataplatform:spark.workerMemory", '"lots"'),
        ({"spark": {"executorMemory": "1GB"}}, "dataplatform:spark.executorMemory", '"1GB"'),
        (
            {"resources": {"redis": {"cpuRequest": "fast", "memoryRequest": "1Gi", "memoryLimit": "1Gi"}}},
            "dataplatform:resources.redis.cpuRequest",
            '"fast"',
        ),
        ({"storage": {"minio": "0Gi"}}, "dataplatform:storage.minio", '"0Gi"'),
    ],
)
def test_malformed_quantities(raw: dict[str, Any], key: str, value: str) -> None:
    message = error_for(raw)
    assert key in message
    assert value in message
    assert "such as" in message


def test_limit_below_request() -> None:
    message = error_for(
        {"resources": {"gateway": {"cpuRequest": "1", "memoryRequest": "2Gi", "memoryLimit": "1Gi"}}}
    )
    assert "dataplatform:resources.gateway.memoryLimit" in message
    assert "below memoryRequest 2Gi" in message


@pytest.mark.parametrize("port", [0, 65536, 70000])
def test_host_port_out_of_range(port: int) -> None:
    message = error_for({"hostPorts": {"redis": port}})
    assert "dataplatform:hostPorts.redis" in message
    assert str(port) in message


def test_spark_ui_on_the_gateway_s_port_is_an_error() -> None:
    # Both listen on 8080 in their containers; only one may have it on the host.
    message = error_for({"hostPorts": {"sparkUi": 8080}})
    assert "dataplatform:hostPorts.sparkUi" in message
    assert "8080 is already given to gateway" in message


def test_grafana_and_inference_collision() -> None:
    message = error_for({"hostPorts": {"grafana": 3000}})
    assert "dataplatform:hostPorts.grafana" in message
    assert "3000 is already given to inference" in message


PROD_IMAGES = ("spark", "minio", "gateway", "inference", "redis", "prometheus", "alertmanager", "grafana")


def test_prod_without_registry() -> None:
    message = error_for({"target": "kubernetes"})
    assert message.count("\n") == 1, "one error"
    assert "dataplatform:imageRegistry: is required when target is kubernetes: " in message
    listed = message.split("kubernetes: ", 1)[1].split(" name no registry", 1)[0].split(", ")
    # The project's own images, the third-party defaults and the operator's.
    assert sorted(listed) == sorted([*(f"images.{n}" for n in PROD_IMAGES), "sparkOperator.image"])


def test_prod_with_every_image_given_in_full_needs_no_registry() -> None:
    images = {n: f"mirror.example.com/{n}:1.0" for n in PROD_IMAGES}
    operator = {"image": "mirror.example.com/spark-operator:2.5.2"}
    raw = {"target": "kubernetes", "images": images, "sparkOperator": operator}
    assert parse_settings(raw, SERVICES).image_registry is None
    # Left out of the list: what the stack does not deploy.
    message = error_for({**raw, "images": {**images, "redis": "redis:7.4.5"}, "grafana": {"enabled": False}})
    assert "is required when target is kubernetes: images.redis name no registry" in message
    images.pop("grafana")
    raw = {
        "target": "kubernetes",
        "images": images,
        "grafana": {"enabled": False},
        "sparkOperator": {"install": False},
    }
    assert parse_settings(raw, SERVICES).image_registry is None


def test_pull_secrets_are_secret_names() -> None:
    settings = parse_settings({"imagePullSecrets": ["regcred", "mirror.cred"]}, SERVICES)
    assert settings.image_pull_secrets == ["regcred", "mirror.cred"]
    assert "dataplatform:imagePullSecrets: 'Reg_Cred' is not a Secret name" in error_for(
        {"imagePullSecrets": ["Reg_Cred"]}
    )
    assert "names a Secret twice" in error_for({"imagePullSecrets": ["a", "a"]})


@pytest.mark.parametrize(
    ("operator", "message"),
    [
        ({"chartSha256": "abc"}, "sparkOperator.chartSha256: must be a sha256 digest"),
        (
            {"chartRepo": "ftp://charts.example.com"},
            "sparkOperator.chartRepo: must be a chart repository URL",
        ),
        ({"chartRepo": "oci://"}, "sparkOperator.chartRepo: must be a chart repository URL"),
        ({"chartRepo": "oci://ghcr.io/kubeflow/helm-charts"}, "sparkOperator.chartSha256: is required"),
        (
            {"chartVersion": "2.6.0"},
            "sparkOperator.chartSha256: is required: no sha256 is known for the chart spark-operator 2.6.0",
        ),
    ],
)
def test_operator_chart_settings(operator: dict[str, Any], message: str) -> None:
    prod = {"target": "kubernetes", "imageRegistry": "r.example.com/dp"}
    assert message in error_for({**prod, "sparkOperator": operator})


def test_chart_sha256_is_written_either_way() -> None:
    digest = "ab" * 32
    for given in (digest, f"sha256:{digest}", f"SHA256:{digest.upper()}"):
        settings = parse_settings({"sparkOperator": {"chartSha256": given}}, SERVICES)
        assert settings.spark_operator.chart_sha256 == digest  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "key", "allowed"),
    [
        ({"sprak": {}}, "dataplatform:sprak", "spark"),
        ({"spark": {"wrokers": 3}}, "dataplatform:spark.wrokers", "workers"),
        ({"hostPorts": {"gateway_": 1}}, "dataplatform:hostPorts.gateway_", "gateway"),
        (
            {"gateway": {"ingress": {"host": "a", "tls": "x"}}},
            "dataplatform:gateway.ingress.tls",
            "tlsSecretName",
        ),
    ],
)
def test_unknown_keys(raw: dict[str, Any], key: str, allowed: str) -> None:
    message = error_for(raw)
    assert f"{key}: unknown key" in message
    assert allowed in message


def test_unpinned_image() -> None:
    for ref in ("redis", "redis:latest"):
        message = error_for({"images": {"redis": ref}})
        assert "dataplatform:images.redis" in message
        assert "pinned" in message


def test_executor_bounds() -> None:
    message = error_for({"spark": {"minExecutors": 5, "maxExecutors": 2}})
    assert "dataplatform:spark.minExecutors" in message


def test_dev_executors_must_fit_a_worker() -> None:
    """A standalone worker never launches an executor bigger than itself, so
    the job would wait for ever: refused at preview, both numbers named."""
    message = error_for({"spark": {"executorMemory": "4Gi", "workerMemory": "1Gi"}})
    assert message.splitlines()[1].strip() == (
        "dataplatform:spark.executorMemory: an executor of 4Gi does not fit a dev Spark worker, which "
        "offers spark.workerMemory 1Gi; lower executorMemory or raise workerMemory"
    )
    message = error_for({"spark": {"executorCores": 2, "workerCores": 1}})
    assert "dataplatform:spark.executorCores: an executor of 2 cores" in message
    assert "spark.workerCores 1" in message
    # Kubernetes sizes pods per job: no worker to fit.
    parse_settings(
        {"target": "kubernetes", "imageRegistry": "r:5000", "spark": {"executorMemory": "4Gi"}}, SERVICES
    )


def test_unknown_job_and_bad_schedule() -> None:
    message = error_for({"sparkJobs": [{"name": "x", "job": "mine"}]})
    assert "dataplatform:sparkJobs.0.job" in message
    message = error_for({"sparkJobs": [{"name": "x", "job": "train", "schedule": "daily"}]})
    assert "dataplatform:sparkJobs.0.schedule" in message


def test_unknown_workload_in_resources() -> None:
    message = error_for(
        {"resources": {"postgres": {"cpuRequest": "1", "memoryRequest": "1Gi", "memoryLimit": "1Gi"}}}
    )
    assert "dataplatform:resources" in message
    assert "postgres" in message


def test_bad_bind_address() -> None:
    message = error_for({"bindAddress": "localhost:80"})
    assert "dataplatform:bindAddress" in message


def test_every_problem_is_reported_at_once() -> None:
    message = error_for({"target": "aws", "spark": {"workers": 0}})
    assert "dataplatform:target" in message and "dataplatform:spark.workers" in message


def test_bad_config_declares_nothing() -> None:
    recorder = Recorder()
    with pytest.raises(SettingsError, match=r"dataplatform:spark\.workers"):
        run_stack("dev", {"spark": {"workers": 0}}, recorder=recorder)
    assert recorder.resources == []


def test_config_strings_are_decoded_like_the_cli_sends_them() -> None:
    _recorder, platform = run_stack("dev", {"spark": '{"workers": 3}', "purgeOnDestroy": "true"})
    assert SPARK.of(platform.settings).workers == 3
    assert platform.settings.purge_on_destroy is True


def _project_config() -> dict[str, Any]:
    import yaml

    from tools.harness import ROOT

    return dict(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"])


def test_project_file_declares_every_platform_wide_key_with_a_default() -> None:
    # The engine refuses to run a stack that lacks a value for a declared
    # key without a default, so every key needs one. Services' own keys are
    # declared with the services, not in Pulumi.yaml.
    from dataplatform.config import Settings

    declared = _project_config()
    assert not [key for key, spec in declared.items() if "default" not in spec]
    fields = {f.alias or name for name, f in Settings.model_fields.items()}
    collected = {"hostPorts", "images", "storage"}
    assert set(declared) == fields | collected


def test_project_defaults_as_the_engine_passes_them_are_valid() -> None:
    import json

    import pulumi

    from stack_config import raw_project_config

    as_text = {
        f"dataplatform:{k}": v if isinstance(v, str) else json.dumps(v)
        for k, v in ((k, spec["default"]) for k, spec in _project_config().items())
    }
    pulumi.runtime.set_all_config(as_text)
    try:
        raw = raw_project_config()
    finally:
        pulumi.runtime.set_all_config({})
    assert "imageRegistry" not in raw and "buildCaFile" not in raw, "empty strings mean unset"
    settings = parse_settings(raw, SERVICES)
    assert settings.image_registry is None
    assert settings.host_ports.gateway == 8080


def test_misspelt_key_in_the_stack_file_is_reported() -> None:
    from tools.harness import ROOT

    stack_file = ROOT / "Pulumi.typo-check.yaml"
    stack_file.write_text("config:\n  dataplatform:sprak:\n    workers: 3\n")
    try:
        with pytest.raises(SettingsError) as caught:
            run_stack("typo-check", {"sprak": {"workers": 3}}, base=False)
    finally:
        stack_file.unlink()
    assert "dataplatform:sprak: unknown key" in str(caught.value)
