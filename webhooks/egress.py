"""The egress policy for every URL the service calls on someone else's behalf (webhooks, alerts).

A URL is checked twice. At registration (`EgressPolicy.check_url`): http(s) only, and a host
that is an IP literal in any spelling (dotted, decimal `2130706433`, hex `0x7f000001`, octal
`0177.0.0.1`, short `127.1`, IPv4-mapped IPv6) must be a public address; metadata host names
(`metadata.google.internal`, `metadata`, `*.internal`, …) are refused by name. At delivery the
client from `egress_client` resolves the host itself, refuses the connection if *any* resolved
address is refused, and connects to the vetted address (the TLS handshake still names the host,
so SNI and certificate checks are unchanged): a DNS answer that changes between the check and
the connection (a rebind) is never used, because there is no second lookup.

Refused: loopback, link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10),
private (RFC 1918), shared (100.64.0.0/10), unique-local (fc00::/7), multicast, unspecified,
reserved and documentation ranges: everything but globally routable addresses. `allow_loopback`
(PERSONAMINT_WEBHOOK_ALLOW_LOOPBACK, local mode and tests) lets loopback receivers through and
nothing else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = ["EgressPolicy", "EgressRefused", "egress_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud and cluster metadata services by name (their addresses are link-local and refused anyway).
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "kubernetes.default",
        "kubernetes.default.svc",
    }
)
# Suffixes of private DNS zones: names under them only ever point inside a network.
PRIVATE_SUFFIXES = (".internal", ".cluster.local", ".svc")
# The NAT64 well-known prefix: the low 32 bits are an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")  # with fullmatch: `$` would pass a trailing newline


class EgressRefused(ValueError):
    """A URL or address the service will not call; `reason` is for operators, never for a tenant's view."""

    code: ClassVar[str] = "egress_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(f"outbound URL refused: {reason}")
        self.reason = reason


def literal_address(host: str) -> IPAddress | None:
    """The IP address a URL host spells, in any spelling `inet_aton` or IPv6 accepts; None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host) and not host.endswith("."):
        try:  # decimal, hex, octal and short forms, as the C resolver (and so most clients) reads them
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 and 6to4 forms as the IPv4 they reach."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class EgressPolicy:
    """Which outbound destinations are allowed; `allow_loopback` admits loopback receivers only."""

    allow_loopback: bool = False

    def check_address(self, address: IPAddress) -> None:
        """Raise EgressRefused unless `address` is globally routable (or loopback, when allowed)."""
        target = _embedded_ipv4(address)
        if target.is_loopback:
            if self.allow_loopback:
                return
            raise EgressRefused("loopback address")
        if target.is_link_local:
            raise EgressRefused("link-local address")
        if target.is_multicast:
            raise EgressRefused("multicast address")
        if target.is_unspecified:
            raise EgressRefused("unspecified address")
        if target.is_private:
            raise EgressRefused("private address")
        if target.is_reserved or not target.is_global:
            raise EgressRefused("non-global address")

    def check_host(self, host: str) -> str:
        """The normalised host (lower-case, no trailing dot) if it may be called; raises EgressRefused."""
        name = host.strip("[]").rstrip(".").lower()
        if not name:
            raise EgressRefused("no host")
        address = literal_address(name)
        if address is not None:
            self.check_address(address)
            return name
        if name in METADATA_HOSTS or name.endswith(PRIVATE_SUFFIXES):
            raise EgressRefused("metadata or private host name")
        return name

    def check_url(self, url: str) -> str:
        """Registration check: an http(s) URL whose host may be called (no DNS lookup); returns the URL."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise EgressRefused("not a valid URL") from None
        if parts.scheme not in ("http", "https"):
            raise EgressRefused("a webhook URL must be http(s)")
        self.check_host(parts.hostname or "")
        return url

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, all of them vetted (one refused address refuses the host)."""
        name = self.check_host(host)
        literal = literal_address(name)
        if literal is not None:
            return [str(literal)]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except OSError:
            raise httpcore.ConnectError("name resolution failed") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(ipaddress.ip_address(address.split("%", 1)[0]))
        if not addresses:
            raise httpcore.ConnectError("name resolution failed")
        return addresses


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and vets the host itself, then connects to a vetted address: no second lookup to rebind."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self._policy.resolve(host, port), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not an outbound destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on the pinned backend (no proxy, ever)."""

    def __init__(self, policy: EgressPolicy, ssl_context: ssl.SSLContext) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
            network_backend=_PinnedBackend(policy),
        )  # fmt: skip


def egress_client(policy: EgressPolicy, *, timeout_s: float) -> httpx.AsyncClient:
    """An HTTP client that only ever connects to addresses `policy` allows (vetted after DNS, pinned)."""
    transport = _PinnedTransport(policy, ssl.create_default_context())
    return httpx.AsyncClient(transport=transport, timeout=timeout_s, trust_env=False, follow_redirects=False)
