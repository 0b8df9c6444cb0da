"""Who is calling, by network address: the ASGI peer, or the client a trusted proxy names.

`X-Forwarded-For` is honoured only when the peer itself is one of PERSONAMINT_TRUSTED_PROXIES
(addresses or CIDRs); then the right-most entry that is not a trusted proxy is the client (the
left part of the header is whatever the client wrote). Limits keyed by address group IPv6
clients by their /64, the smallest block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from litestar import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in trusted)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(request: Request[Any, Any, Any], trusted_proxies: Iterable[str]) -> str:
    """The caller's address as text (`unknown` when the server has none)."""
    peer = _address(request.client.host if request.client else "")
    if peer is None:
        return "unknown"
    networks = _networks(tuple(trusted_proxies))
    if not any(peer in network for network in networks):
        return str(peer)
    forwarded = ",".join(request.headers.getall("x-forwarded-for", []))
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:
            return str(peer)  # a malformed chain: trust nothing past the proxy
        if not any(address in network for network in networks):
            return str(address)
    return str(peer)


def limit_bucket(address: str) -> str:
    """The rate-limit identity of an address: itself for IPv4, its /64 for IPv6."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address
