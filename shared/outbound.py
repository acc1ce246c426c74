"""Server-side request forgery guard for every outbound call to a URL a tenant gave us (webhook
endpoints, workflow webhooks). Pure apart from `resolve`, the system resolver passed in by callers,
and `session`, the only way such a URL is called.

A URL must be https and every address its host resolves to must be public (not private, loopback,
link-local, multicast, reserved, unspecified, shared or the metadata server), and so must every IPv4
address an IPv6 address embeds (IPv4-mapped and -compatible, 6to4, Teredo, NAT64). The local switch
(CMP_WEBHOOKS_ALLOW_LOOPBACK) also allows http:// and loopback addresses, nothing else. URLs are checked
when saved, and again by `session()` at every call, which then connects to the address it checked:
the host is resolved once per call, so DNS cannot answer a public address to the check and a private
one to the connection. TLS still verifies the certificate against the URL's host name (SNI too).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeUrl(ValueError):
    pass


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries, by any of the standard embeddings."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found += list(ip.teredo)  # (server, client)
    if any(ip in network for network in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_refusal(address: str, allow_loopback: bool = False) -> str | None:
    """Why this IP address may not be a webhook target, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = embedded_ipv4(ip)
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # an IPv4 address written as IPv6: judged as the IPv4 address alone
        else:
            for inner in embedded:
                reason = address_refusal(str(inner), allow_loopback)
                if reason is not None:
                    return f"{reason} (embedded in {address})"
    if ip in _METADATA_ADDRESSES:
        return "the metadata server"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or (
        isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10")
    ):
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "a non-public address"
    return None


Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`, checked) and what to ask for (`host`, `port`)."""

    scheme: str
    host: str
    port: int
    address: str


def check_url(url: str, resolve: Resolver, allow_loopback: bool = False) -> Target:
    """Raise UnsafeUrl unless `url` may be called: https (http too with the local switch) and every
    address of its host public. Returns the target, pinned to the first address checked."""
    parts = urlsplit(url)
    allowed = {"https", "http"} if allow_loopback else {"https"}
    if parts.scheme not in allowed:
        raise UnsafeUrl("the URL must use https")
    if parts.username or parts.password:
        raise UnsafeUrl("the URL must not carry credentials")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl("the URL has no host")
    if host in METADATA_HOSTS:
        raise UnsafeUrl("the URL targets the metadata server")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl("the URL's port is not valid") from exc
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise UnsafeUrl(f"the host {host} does not resolve") from exc
    if not addresses:
        raise UnsafeUrl(f"the host {host} does not resolve")
    for address in addresses:
        try:
            reason = address_refusal(address, allow_loopback)
        except ValueError as exc:
            raise UnsafeUrl(f"the host {host} resolves to an unreadable address") from exc
        if reason is not None:
            raise UnsafeUrl(f"the host {host} resolves to {reason}")
    return Target(parts.scheme, host, port, addresses[0])


def resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host:port."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


class PinnedAdapter(HTTPAdapter):
    """Checks each request's URL and connects to the very address it checked (no second resolution);
    the request keeps its host name for the Host header, SNI and certificate verification."""

    def __init__(self, resolve: Resolver, allow_loopback: bool) -> None:
        super().__init__(max_retries=0)
        self._resolve = resolve
        self._allow_loopback = allow_loopback

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        target = check_url(str(request.url), self._resolve, self._allow_loopback)
        request.headers["Host"] = urlsplit(str(request.url)).netloc.rsplit("@", 1)[-1]
        request.__dict__["_outbound_target"] = target
        return super().send(request, **kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        target: Target = request.__dict__["_outbound_target"]
        if target.scheme == "https":
            return HTTPSConnectionPool(
                target.address,
                target.port,
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=requests.utils.DEFAULT_CA_BUNDLE_PATH,
            )
        return HTTPConnectionPool(target.address, target.port)


def session(allow_loopback: bool = False, resolver: Resolver | None = None) -> requests.Session:
    """The HTTP session for tenant-given URLs: every request is checked and pinned (PinnedAdapter),
    never redirected through a proxy from the environment."""
    pinned = requests.Session()
    pinned.trust_env = False
    adapter = PinnedAdapter(resolver or resolve, allow_loopback)
    pinned.mount("https://", adapter)
    pinned.mount("http://", adapter)
    return pinned
