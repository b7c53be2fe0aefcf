"""A new service is one module plus one line in the catalogue: listed,
``tests/echo_service.py`` is rendered on both targets, its settings are
validated, Prometheus scrapes it and the platform exports its output.

The catalogue with the echo service is passed to the settings and the
platform as any program passes its specs: nothing is patched."""

from __future__ import annotations

import pytest
import yaml

from dataplatform.config import SettingsError
from dataplatform.services.catalog import SERVICES
from dataplatform.settings import parse_settings
from tests import echo_service
from tools.harness import OfflineSupply, run_stack, unwrap

# The one line: placed before Prometheus, which scrapes the services above it.
_AT = [s.name for s in SERVICES].index("prometheus")
SPECS = (*SERVICES[:_AT], echo_service.SPEC, *SERVICES[_AT:])


def test_rendered_on_docker() -> None:
    recorder, platform = run_stack("dev", {"echo": {"text": "hi"}}, specs=SPECS)
    container = unwrap(recorder.named("docker:index/container:Container", "echo").inputs)
    assert container["command"] == ["-text=hi", "-listen=:5678"]
    assert container["ports"] == [{"internal": 5678, "external": 5678, "ip": "127.0.0.1"}]
    volume = recorder.named("docker:index/volume:Volume", "echo-data")
    assert volume.inputs["name"] == "dataplatform-dev-echo-data"
    jobs = yaml.safe_load(platform.services["prometheus"].config)["scrape_configs"]
    assert "echo" in {j["job_name"] for j in jobs}


def test_rendered_on_kubernetes() -> None:
    recorder, platform = run_stack(
        "prod",
        {
            "storage": {"echo": "3Gi"},
            "resources": {"echo": {"cpuRequest": "20m", "memoryRequest": "32Mi", "memoryLimit": "32Mi"}},
        },
        specs=SPECS,
    )
    deployment = unwrap(recorder.named("kubernetes:apps/v1:Deployment", "echo").inputs)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # Its image names no registry: on Kubernetes it is pulled from
    # imageRegistry and pinned by digest, like the catalogue's.
    mirrored = "registry.example.com/dataplatform/hashicorp/http-echo:1.0.0"
    assert container["image"] == f"{mirrored}@{OfflineSupply().image_digest(mirrored)}"
    assert container["resources"]["limits"] == {"memory": "32Mi"}
    claim = unwrap(recorder.named("kubernetes:core/v1:PersistentVolumeClaim", "echo-data").inputs)
    assert claim["spec"]["resources"]["requests"]["storage"] == "3Gi"
    recorder.named("kubernetes:core/v1:Service", "echo-pods")
    policy = unwrap(recorder.named("kubernetes:networking.k8s.io/v1:NetworkPolicy", "prometheus").inputs)
    assert {"matchLabels": {"app.kubernetes.io/name": "echo"}} in [
        peer["podSelector"] for rule in policy["spec"]["egress"] for peer in rule.get("to", [])
    ]
    jobs = yaml.safe_load(platform.services["prometheus"].config)["scrape_configs"]
    assert "echo" in {j["job_name"] for j in jobs}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"echo": {"replicas": 9}}, "dataplatform:echo.replicas: Input should be less than or equal to 3"),
        ({"echo": {"txt": "x"}}, "dataplatform:echo.txt: unknown key; allowed keys: replicas, text"),
        ({"hostPorts": {"echo": 8080}}, "dataplatform:hostPorts.echo: port 8080 is already given to gateway"),
        ({"images": {"echo": "hashicorp/http-echo"}}, "dataplatform:images.echo: must be pinned"),
        ({"storage": {"echo": "big"}}, "dataplatform:storage.echo: must be a memory quantity"),
    ],
)
def test_settings_validated(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw, SPECS)
    assert expected in str(caught.value)


def test_resources_accept_its_workload() -> None:
    parse_settings(
        {"resources": {"echo": {"cpuRequest": "1", "memoryRequest": "1Gi", "memoryLimit": "1Gi"}}}, SPECS
    )


def test_the_catalogue_alone_does_not_know_it() -> None:
    with pytest.raises(SettingsError, match="dataplatform:echo: unknown key"):
        parse_settings({"echo": {"text": "x"}}, SERVICES)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_output_exported(stack: str) -> None:
    _recorder, platform = run_stack(stack, specs=SPECS)
    assert "echo_url" in platform.outputs
    assert {"gateway_url", "prometheus_url", "spark_submit", "platform_credentials"} <= set(platform.outputs)


def test_a_flow_to_an_undeclared_workload_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataplatform.workload import Workload, WorkloadError

    original = Workload.__init__

    def misspelt(self: Workload, *args: object, **kwargs: object) -> None:
        if kwargs.get("name") == "echo":
            kwargs["talks_to"] = ("rdis",)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Workload, "__init__", misspelt)
    with pytest.raises(WorkloadError, match="echo: names 'rdis', which is not a declared workload"):
        run_stack("dev", specs=SPECS)
