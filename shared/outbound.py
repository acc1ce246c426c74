"""Server-side request forgery guard for every outbound call to a URL a tenant gave us (webhook
endpoints, workflow webhooks). Pure apart from `resolve`, the system resolver passed in by callers.

A URL must be https and every address its host resolves to must be public (not private, loopback,
link-local, multicast, reserved, unspecified, shared or the metadata server). The local switch
(CMP_WEBHOOKS_ALLOW_LOOPBACK) also allows http:// and loopback addresses, nothing else. Callers check
again right before each call: DNS may have changed since the URL was saved.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeUrl(ValueError):
    pass


def address_refusal(address: str, allow_loopback: bool = False) -> str | None:
    """Why this IP address may not be a webhook target, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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


def check_url(url: str, resolve: Resolver, allow_loopback: bool = False) -> None:
    """Raise UnsafeUrl unless `url` may be called: https (http too with the local switch) and every
    address of its host public."""
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
        reason = address_refusal(address, allow_loopback)
        if reason is not None:
            raise UnsafeUrl(f"the host {host} resolves to {reason}")


def resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host:port."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
