"""The service exports every metric the platform's alerts and dashboard read.

``infra/dataplatform/monitoring/metrics.py`` (at the repository root) lists them; rules and
panels use nothing else. Here the real app serves traffic in-process and
its ``/metrics`` is scraped: a name in the catalog that the service does
not export fails the test.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from inference.settings import Settings
from inference_testkit import FEATURES, Publish

REPO = Path(__file__).resolve().parents[3]
CATALOG = REPO / "infra" / "dataplatform" / "monitoring" / "metrics.py"


def catalog() -> ModuleType:
    """infra/dataplatform/monitoring/metrics.py, loaded by path: it depends on nothing but the
    standard library, and this service's environment has no repository
    packages."""
    spec = importlib.util.spec_from_file_location("platform_metrics", CATALOG)
    assert spec is not None, CATALOG
    assert spec.loader is not None, CATALOG
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def exported(text: str) -> dict[str, set[str]]:
    """Sample names per family type, as a scrape sees them."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(family.type, set()).add(sample.name)
    return found


def test_every_catalogued_inference_metric_is_exported_after_traffic(
    publish: Publish,
    make_settings: Callable[..., Settings],
    start_client: Callable[[Settings], TestClient],
    put_entity: Callable[..., str],
) -> None:
    metrics = catalog()
    publish("20260101T000000Z")
    client = start_client(make_settings())
    entity = put_entity(dict.fromkeys(FEATURES, 1.0))
    assert client.post("/v1/predict", json={"entity_id": entity}).status_code == 200
    row = dict.fromkeys(FEATURES, 2.0)
    assert client.post("/v1/predict", json={"features": row}).status_code == 200
    assert client.post("/v1/predict", json={"entity_id": "nobody"}).status_code == 404

    samples = exported(client.get("/metrics").text)
    names = set().union(*samples.values())
    service = metrics.service("inference")
    missing = sorted(s for metric in service.metrics for s in metric.samples if s not in names)
    assert missing == [], f"catalogued but not exported: {missing}"
    for metric in service.metrics:
        typed = samples.get(metric.type, set())
        assert metric.samples <= typed, f"{metric.name} is not a {metric.type}"


def test_requests_are_counted_by_source_and_status(
    publish: Publish,
    make_settings: Callable[..., Settings],
    start_client: Callable[[Settings], TestClient],
) -> None:
    publish("20260101T000000Z")
    client = start_client(make_settings())
    row = dict.fromkeys(FEATURES, 2.0)
    client.post("/v1/predict", json={"features": row})
    client.post("/v1/predict", json={"entity_id": "nobody"})
    counted = {
        (s.labels["source"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
        if s.name == "inference_predict_requests_total"
    }
    assert counted == {("inline", "200"): 1.0, ("entity", "404"): 1.0}


def test_reload_failures_are_exported_at_zero_before_the_first_one(
    make_settings: Callable[..., Settings], start_client: Callable[[Settings], TestClient]
) -> None:
    # No model published: the service starts without one, and nothing failed yet.
    client = start_client(make_settings())
    reasons = {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
        if s.name == "inference_model_reload_failures_total"
    }
    assert set(reasons) == {"registry_unavailable", "invalid"}
