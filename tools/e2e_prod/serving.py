"""Prod step 5: predictions through the Ingress (TLS verified) and the gateway Service."""

from __future__ import annotations

import collections
import socket
import ssl
from http.client import HTTPConnection, HTTPSConnection

from tools.e2e_common import gateway as scenario
from tools.e2e_common.report import check
from tools.e2e_common.web import Response
from tools.e2e_prod.stack import ProdStack


class SNIConnection(HTTPSConnection):
    """HTTPS to an address, with the TLS server name (and Host) of a name."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext) -> None:
        super().__init__(address, port, context=context, timeout=10)
        self.server_name = server_name
        self.tls_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.server_name)


def ingress(prod: ProdStack, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
    """A request through the cluster's Ingress on loopback, trusting only this run's certificate."""
    context = ssl.create_default_context(cafile=str(prod.tls_dir / "tls.crt"))
    connection = SNIConnection(
        "127.0.0.1", int(prod.cluster["CLUSTER_INGRESS_HTTPS_PORT"]), prod.host, context
    )
    try:
        connection.request(method, path, body=body, headers={"Host": prod.host, **headers})
        reply = connection.getresponse()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        connection.close()


def plain_http_is_redirected(prod: ProdStack, key: str) -> None:
    """Plain HTTP through the Ingress: a 308 to the same URL over HTTPS
    (the method and body kept), not an answer."""
    connection = HTTPConnection("127.0.0.1", int(prod.cluster["CLUSTER_INGRESS_HTTP_PORT"]), timeout=10)
    try:
        headers = {"Host": prod.host, **scenario.auth(key), "Content-Type": "application/json"}
        connection.request("POST", scenario.PREDICT, body=scenario.entity("u00000001"), headers=headers)
        reply = connection.getresponse()
        reply.read()
    finally:
        connection.close()
    location = reply.getheader("Location")
    wanted = f"https://{prod.host}{scenario.PREDICT}"
    check(
        reply.status == 308 and location == wanted,
        f"plain HTTP: {reply.status} to {location!r}, not 308 to {wanted}",
    )
    prod.report.ok(f"plain HTTP through the Ingress: 308 to {wanted}")


def serving(prod: ProdStack, version: str) -> None:
    key = prod.credentials()["gateway_api_key"]

    def through_ingress(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        return ingress(prod, method, path, body, headers)

    scenario.wait_served(
        "the Ingress serving the new model over TLS", through_ingress, key, version, timeout=180, interval=2
    )
    prod.report.ok(f"Ingress (TLS, certificate for {prod.host} verified): prediction with model {version}")
    scenario.check_no_key(through_ingress, "Ingress without a key")
    for path in ("/metrics", "/readyz"):
        status = through_ingress("GET", path, None, {}).status
        check(status == 404, f"{path} through the Ingress: {status}, expected 404")
    prod.report.ok("Ingress: no key 401; /metrics and /readyz 404")
    plain_http_is_redirected(prod, key)
    with prod.kube.forward(prod.namespace, "svc/gateway", 80) as port:
        service = scenario.at_url(f"http://127.0.0.1:{port}")
        reply = service("POST", scenario.PREDICT, scenario.entity("u00000001"), scenario.auth(key))
        check(reply.status == 200, f"gateway Service: {reply.status} {reply.body[:200]!r}")
        scenario.check_no_key(service, "no key")
        found = scenario.latencies(service, key, 300)
        prod.report.add(
            "gateway Service port 80, 300 sequential predictions",
            f"p50 {scenario.percentile(found, 50):.1f} ms, p99 {scenario.percentile(found, 99):.1f} ms",
        )

    # The burst goes through the Ingress, the path users take: `kubectl
    # port-forward` multiplexes every connection over one stream to the
    # API server and stalls under many at once.
    statuses = [r.status for r in scenario.burst(through_ingress, key, count_unanswered=True)]
    counts = collections.Counter(statuses)
    check(counts[429] > 0, f"no 429 in a burst over the limit: {counts}")
    check(set(counts) <= {200, 429}, f"a burst over the limit answered other than 200/429: {counts}")
    prod.report.ok(
        f"gateway Service: 200, no key 401; Ingress burst: {counts[429]} of {len(statuses)} answered 429"
    )
