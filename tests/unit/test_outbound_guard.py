"""shared.outbound: embedded IPv4 forms are judged by the IPv4 address they carry, and a tenant-given
URL is called at the very address that was checked (one resolution per call: no DNS rebinding)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import requests
from urllib3.connectionpool import HTTPSConnectionPool

from shared import outbound


@pytest.mark.parametrize(
    "address",
    [
        "2002:c0a8:0101::1",  # 6to4 of 192.168.1.1
        "2002:7f00:0001::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the metadata server
        "2002:0a00:0001::",  # 6to4 of 10.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata server
        "64:ff9b:1::a00:1",  # local-use NAT64
        "::10.0.0.1",  # IPv4-compatible
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    ],
)
def test_an_ipv6_address_embedding_a_forbidden_ipv4_address_is_refused(address: str) -> None:
    assert outbound.address_refusal(address) is not None
    with pytest.raises(outbound.UnsafeUrl):
        outbound.check_url("https://hook.example/x", lambda host, port: [address])


@pytest.mark.parametrize("address", ["2002:0808:0808::1", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert outbound.address_refusal(address) is None


def test_loopback_is_allowed_embedded_only_with_the_local_switch() -> None:
    assert outbound.address_refusal("2002:7f00:0001::1", allow_loopback=True) is None
    assert outbound.address_refusal("2002:0a00:0001::", allow_loopback=True) is not None


class _Receiver(http.server.BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Receiver.hosts.append(self.headers["Host"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.hosts = []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class Rebinding:
    """Answers the checked address first, then a forbidden one: a second resolution would get it."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return [self.first] if self.calls == 1 else ["169.254.169.254"]


def test_the_session_connects_to_the_address_it_checked(receiver: int) -> None:
    resolver = Rebinding("127.0.0.1")
    session = outbound.session(allow_loopback=True, resolver=resolver)
    # "rebind.invalid" exists nowhere but in this resolver: the call can only reach the checked address.
    response = session.post(f"http://rebind.invalid:{receiver}/hook", data=b"{}", timeout=5)
    assert response.status_code == 204
    assert resolver.calls == 1
    assert _Receiver.hosts == [f"rebind.invalid:{receiver}"]


def test_the_session_refuses_before_connecting() -> None:
    session = outbound.session(resolver=lambda host, port: ["10.1.2.3"])
    with pytest.raises(outbound.UnsafeUrl, match="private"):
        session.post("https://internal.invalid/x", data=b"{}", timeout=5)


def test_https_is_pinned_and_still_verified_against_the_host_name() -> None:
    adapter = outbound.PinnedAdapter(lambda host, port: ["93.184.216.34"], allow_loopback=False)
    request = requests.Request("POST", "https://hooks.example.com:8443/x", data=b"{}").prepare()
    request.__dict__["_outbound_target"] = outbound.check_url(str(request.url), adapter._resolve)
    pool = adapter.get_connection_with_tls_context(request, verify=True)
    assert isinstance(pool, HTTPSConnectionPool)
    assert (pool.host, pool.port) == ("93.184.216.34", 8443)
    assert pool.conn_kw["server_hostname"] == "hooks.example.com"
    assert pool.assert_hostname == "hooks.example.com" and pool.cert_reqs == "CERT_REQUIRED"
