"""Pinning the prod tier: image references and where they are pulled from,
digests resolved over the registry API, the Spark Operator chart fetched
and checked against its sha256 (match, mismatch, the message), all against
a registry and a chart repository served on loopback by the test."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataplatform.charts import ChartError, ChartFetcher, ChartMismatch, ChartSource, file_sha256, tree_sha256
from dataplatform.config import SettingsError
from dataplatform.images import ImageReferenceError, Reference, placed
from dataplatform.pinning import pin, pinned_images
from dataplatform.registry import RegistryClient, RegistryError, api_base
from dataplatform.services.catalog import SERVICES
from dataplatform.services.spark.shared import KNOWN_CHART_DIGESTS, pin_chart
from dataplatform.settings import parse_settings
from dataplatform.supply import RegistrySupply
from tools.harness import OfflineSupply
from tools.repo import ROOT

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
VENDORED = ROOT.parent / "shared" / "vendor" / "spark-operator-2.5.2.tar.gz"


# -- references ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag"),
    [
        ("redis:7.4.5-bookworm", None, "redis", "7.4.5-bookworm"),
        ("prom/prometheus:v3.5.0", None, "prom/prometheus", "v3.5.0"),
        ("127.0.0.1:5000/dataplatform/gateway:0.1.0", "127.0.0.1:5000", "dataplatform/gateway", "0.1.0"),
        ("localhost/app", "localhost", "app", None),
        ("registry.example.com/a/b/c:1", "registry.example.com", "a/b/c", "1"),
    ],
)
def test_references(text: str, host: str | None, repository: str, tag: str | None) -> None:
    ref = Reference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, None)
    assert str(ref) == text


def test_a_reference_that_names_no_registry_is_pulled_from_image_registry() -> None:
    digest = "sha256:" + "ab" * 32
    assert placed("redis:7.4.5", "r.example.com:5000/dp") == "r.example.com:5000/dp/redis:7.4.5"
    assert placed("prom/prometheus:v3.5.0", "r.example.com") == "r.example.com/prom/prometheus:v3.5.0"
    assert (
        placed(f"docker.io/library/redis:7@{digest}", "r.example.com")
        == f"docker.io/library/redis:7@{digest}"
    )
    assert placed("redis:7.4.5", None) == "redis:7.4.5"
    assert str(Reference.parse("r.example.com/redis:7").pinned(digest)) == f"r.example.com/redis:7@{digest}"


@pytest.mark.parametrize("text", ["Redis:7", "redis:7@sha256:abc", "redis:bad tag", "r.example.com/"])
def test_bad_references(text: str) -> None:
    with pytest.raises(ImageReferenceError):
        Reference.parse(text)


def test_loopback_registries_are_plain_http() -> None:
    assert api_base("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert api_base("localhost:5000") == "http://localhost:5000"
    assert api_base("[::1]:5000") == "http://[::1]:5000"
    assert api_base("registry.example.com") == "https://registry.example.com"
    assert api_base("docker.io") == "https://registry-1.docker.io"


# -- a registry and a chart repository on loopback -------------------------------


class Served:
    """What the test server answers: manifests by (repository, tag or
    digest), blobs by digest, plain files by path; with ``token`` set, the
    registry API asks for it the way registries do (401 + Bearer challenge)."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.token: str | None = None
        self.digest_header = True
        self.requests: list[str] = []
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def image(self, repository: str, tag: str, content: bytes = b"") -> str:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [], "x": content.hex()})
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        self.manifests[repository, tag] = (OCI_MANIFEST, body.encode())
        self.manifests[repository, digest] = (OCI_MANIFEST, body.encode())
        return digest

    def chart(self, repository: str, tag: str, archive: bytes) -> None:
        layer = "sha256:" + hashlib.sha256(archive).hexdigest()
        self.blobs[layer] = archive
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": layer, "size": 0},
            "layers": [{"mediaType": CHART_LAYER, "digest": layer, "size": len(archive)}],
        }
        self.manifests[repository, tag] = (OCI_MANIFEST, json.dumps(manifest).encode())


@pytest.fixture
def served() -> Iterator[Served]:
    state = Served()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            state.requests.append(f"{self.command} {self.path}")
            if self.path.startswith("/token"):
                self._answer(200, json.dumps({"token": state.token}).encode())
                return
            if not self.path.startswith("/v2/"):
                body = state.files.get(self.path)
                self._answer(200 if body is not None else 404, body or b"")
                return
            if state.token and self.headers.get("Authorization") != f"Bearer {state.token}":
                realm = f'Bearer realm="http://{state.host}/token",service="test"'
                self._answer(401, b"", {"WWW-Authenticate": realm})
                return
            repository, _, rest = self.path[len("/v2/") :].rpartition("/manifests/")
            if repository:
                found = state.manifests.get((repository, rest))
                if found is None:
                    self._answer(404)
                    return
                media_type, body = found
                headers = {"Content-Type": media_type}
                if state.digest_header:
                    headers["Docker-Content-Digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
                self._answer(200, body, headers)
                return
            repository, _, digest = self.path[len("/v2/") :].rpartition("/blobs/")
            blob = state.blobs.get(digest)
            self._answer(200 if blob is not None else 404, blob or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def no_credentials(host: str) -> None:
    return None


def client() -> RegistryClient:
    return RegistryClient(timeout=5, credentials=no_credentials)


# -- image digests ---------------------------------------------------------------


def test_a_tag_resolves_to_the_digest_the_registry_holds(served: Served) -> None:
    digest = served.image("dataplatform/gateway", "0.1.0")
    assert client().manifest_digest(f"{served.host}/dataplatform/gateway:0.1.0") == digest
    assert served.requests == ["HEAD /v2/dataplatform/gateway/manifests/0.1.0"]
    # Without the header on HEAD, the manifest's own hash is its digest.
    served.digest_header = False
    assert client().manifest_digest(f"{served.host}/dataplatform/gateway:0.1.0") == digest


def test_a_registry_that_asks_for_a_token_gets_one(served: Served) -> None:
    served.token = "t0ken"
    digest = served.image("dataplatform/gateway", "0.1.0")
    assert client().manifest_digest(f"{served.host}/dataplatform/gateway:0.1.0") == digest
    assert any(
        r.startswith("GET /token?service=test&scope=repository%3Adataplatform%2Fgateway%3Apull")
        for r in served.requests
    )


def test_registry_errors_say_why(served: Served) -> None:
    with pytest.raises(RegistryError, match=r"dataplatform/nope:0.1.0 is not in the registry \(HTTP 404\)"):
        client().manifest_digest(f"{served.host}/dataplatform/nope:0.1.0")
    with pytest.raises(RegistryError, match=r"cannot reach 127.0.0.1:1"):
        client().manifest_digest("127.0.0.1:1/dataplatform/gateway:0.1.0")


def prod_settings(registry: str, **more: Any) -> Any:
    return parse_settings({"target": "kubernetes", "imageRegistry": registry, **more}, SERVICES)


def test_every_prod_image_is_pinned_from_the_registry(served: Served) -> None:
    settings = prod_settings(f"{served.host}/dp", grafana={"enabled": False})
    names = {
        "images.spark": "dp/spark:0.1.0",
        "images.minio": "dp/minio:0.1.0",
        "images.gateway": "dp/gateway:0.1.0",
        "images.inference": "dp/inference:0.1.0",
        "images.redis": "dp/redis:7.4.5-bookworm",
        "images.prometheus": "dp/prom/prometheus:v3.5.0",
        "images.alertmanager": "dp/prom/alertmanager:v0.28.1",
        "sparkOperator.image": "dp/kubeflow/spark-operator/controller:2.5.2",
    }
    digests = {key: served.image(*name.split(":")) for key, name in names.items()}
    found = pinned_images(settings, SERVICES, RegistrySupply(client()))
    assert found == {key: f"{served.host}/{name}@{digests[key]}" for key, name in names.items()}


def test_images_that_cannot_be_pinned_are_named_in_one_error(served: Served) -> None:
    settings = prod_settings(f"{served.host}/dp")
    served.image("dp/spark", "0.1.0")
    with pytest.raises(SettingsError) as raised:
        pinned_images(settings, SERVICES, RegistrySupply(client()))
    lines = str(raised.value).splitlines()
    assert lines[0] == "cannot pin the prod images to digests:"
    assert len(lines) == 1 + 8, "every image but spark's"
    assert (
        f"  dataplatform:images.gateway: cannot resolve {served.host}/dp/gateway:0.1.0 to a digest: "
        f"{served.host}/dp/gateway:0.1.0 is not in the registry (HTTP 404); push the image there, "
        "or give it with its digest (name@sha256:...)"
    ) in lines
    assert not any("images.spark:" in line for line in lines)


def test_the_dev_tier_is_left_as_it_is() -> None:
    class Refuses(OfflineSupply):
        def image_digest(self, reference: str) -> str:
            raise AssertionError("dev asks no registry")

    settings = parse_settings({}, SERVICES)
    assert pin(settings, SERVICES, Refuses()) is settings


# -- charts ---------------------------------------------------------------------


def chart_archive(version: str = "2.5.2", extra: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (
            ("spark-operator/Chart.yaml", f"apiVersion: v2\nname: spark-operator\nversion: {version}\n"),
            ("spark-operator/values.yaml", f"image: {{}}\n{extra}"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def repository(served: Served, archive: bytes, url: str = "charts/spark-operator-2.5.2.tgz") -> str:
    index = {"apiVersion": "v1", "entries": {"spark-operator": [{"version": "2.5.2", "urls": [url]}]}}
    served.files["/repo/index.yaml"] = yaml.safe_dump(index).encode()
    served.files["/repo/charts/spark-operator-2.5.2.tgz"] = archive
    return f"http://{served.host}/repo"


def test_a_repository_chart_that_matches_is_cached_and_then_read_offline(
    served: Served, tmp_path: Path
) -> None:
    archive = chart_archive()
    expected = hashlib.sha256(archive).hexdigest()
    source = ChartSource("spark-operator", "2.5.2", repository(served, archive))
    path = ChartFetcher(tmp_path, client()).verified(source, expected)
    assert Path(path).read_bytes() == archive and Path(path).parent == tmp_path
    served.files.clear()
    assert ChartFetcher(tmp_path, client()).verified(source, expected) == path


def test_a_repository_chart_that_does_not_match_is_refused_and_not_kept(
    served: Served, tmp_path: Path
) -> None:
    archive = chart_archive(extra="# changed\n")
    source = ChartSource("spark-operator", "2.5.2", repository(served, archive))
    expected = "0" * 64
    with pytest.raises(ChartMismatch) as raised:
        ChartFetcher(tmp_path, client()).verified(source, expected)
    assert (raised.value.expected, raised.value.actual) == (expected, hashlib.sha256(archive).hexdigest())
    assert not list(tmp_path.iterdir())


def test_an_oci_chart_is_its_chart_layer(served: Served, tmp_path: Path) -> None:
    archive = chart_archive()
    served.token = "t0ken"
    served.chart("charts/spark-operator", "2.5.2", archive)
    source = ChartSource("spark-operator", "2.5.2", f"oci://{served.host}/charts")
    path = ChartFetcher(tmp_path, client()).verified(source, hashlib.sha256(archive).hexdigest())
    assert Path(path).read_bytes() == archive
    with pytest.raises(ChartError, match=r"is not in the registry"):
        ChartFetcher(tmp_path, client()).verified(
            ChartSource("spark-operator", "9.9.9", source.repo), "0" * 64
        )


def test_a_chart_directory_digest_is_what_the_shell_computes(tmp_path: Path) -> None:
    (tmp_path / "templates" / "sub").mkdir(parents=True)
    (tmp_path / "Chart.yaml").write_text("version: 2.5.2\n")
    (tmp_path / ".helmignore").write_text("ci/\n")
    (tmp_path / "templates" / "a.yaml").write_text("a: 1\n")
    (tmp_path / "templates" / "sub" / "B.yaml").write_text("b: 2\n")
    (tmp_path / "templates" / "link.yaml").symlink_to(tmp_path / "templates" / "a.yaml")
    shell = subprocess.run(
        "find -L . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert tree_sha256(tmp_path) == shell
    before = tree_sha256(tmp_path)
    (tmp_path / "templates" / "a.yaml").write_text("a: 2\n")
    assert tree_sha256(tmp_path) != before


@pytest.mark.skipif(not VENDORED.is_file(), reason="no vendored copy of the operator's source here")
def test_the_known_directory_digest_is_the_upstream_2_5_2_chart(tmp_path: Path) -> None:
    with tarfile.open(VENDORED) as archive:
        archive.extractall(tmp_path, filter="data")
    chart = next(tmp_path.glob("*/charts/spark-operator-chart"))
    assert tree_sha256(chart) == KNOWN_CHART_DIGESTS["2.5.2", "directory"]


def operator_settings(**operator: Any) -> Any:
    return prod_settings("r.example.com/dp", sparkOperator=operator)


def test_a_chart_archive_on_disk_is_checked_by_its_own_sha256(tmp_path: Path) -> None:
    path = tmp_path / "spark-operator-2.5.2.tgz"
    path.write_bytes(chart_archive())
    settings = operator_settings(chartPath=str(path), chartSha256=file_sha256(path))
    pinned = pin_chart(settings, OfflineSupply())
    assert pinned.spark_operator.chart_path == str(path)  # type: ignore[attr-defined]
    # Without chartSha256 the default is the known digest of the 2.5.2 archive.
    with pytest.raises(SettingsError) as raised:
        pin_chart(operator_settings(chartPath=str(path)), OfflineSupply())
    assert (
        f"expected sha256:{KNOWN_CHART_DIGESTS['2.5.2', 'archive']}, got sha256:{file_sha256(path)}"
        in str(raised.value)
    )
    (tmp_path / "old.tgz").write_bytes(chart_archive("2.4.0"))
    with pytest.raises(
        SettingsError, match=r"sparkOperator.chartPath: the chart in .*old.tgz is version 2.4.0"
    ):
        operator_settings(chartPath=str(tmp_path / "old.tgz"))


def test_the_mismatch_message_names_the_key_and_both_digests(served: Served, tmp_path: Path) -> None:
    archive = chart_archive()
    actual = hashlib.sha256(archive).hexdigest()
    repo = repository(served, archive)
    settings = operator_settings(chartRepo=repo, chartSha256="ab" * 32)
    with pytest.raises(SettingsError) as raised:
        pin_chart(settings, RegistrySupply(client(), tmp_path))
    assert str(raised.value) == (
        f"dataplatform:sparkOperator.chartSha256: the chart spark-operator 2.5.2 from {repo} does not match: "
        f"expected sha256:{'ab' * 32}, got sha256:{actual}; nothing was deployed. Use the chart that digest "
        "names, or set chartSha256 to the digest of a chart you trust"
    )
    # Once it matches, the chart is installed from the checked archive.
    pinned = pin_chart(
        operator_settings(chartRepo=repo, chartSha256=actual), RegistrySupply(client(), tmp_path)
    )
    assert Path(pinned.spark_operator.chart_path).read_bytes() == archive  # type: ignore[attr-defined]


def test_a_chart_that_cannot_be_fetched_names_where_from(tmp_path: Path) -> None:
    settings = operator_settings(chartRepo="http://127.0.0.1:1/charts")
    with pytest.raises(
        SettingsError,
        match=r"^dataplatform:sparkOperator.chartRepo: cannot fetch the chart spark-operator 2.5.2 "
        r"from http://127.0.0.1:1/charts: cannot reach 127.0.0.1:1",
    ):
        pin_chart(settings, RegistrySupply(client(), tmp_path))


def test_a_malformed_reference_is_named_with_its_key() -> None:
    settings = prod_settings("r.example.com/dp", images={"redis": "Redis:7"})
    with pytest.raises(SettingsError) as raised:
        pinned_images(settings, SERVICES, OfflineSupply())
    assert "dataplatform:images.redis: Redis:7: 'Redis' is not a repository name; write it as" in str(
        raised.value
    )
