"""SSRF guard for host endpoints: resolve, check every address, connect only to what was checked.

A host endpoint is a URL someone typed into a config file; nothing stops it from naming the
cloud metadata service, a database on the private network or RoomWarden's own ``/metrics``. So
before any packet is sent:

- IP literals in the URL -- including the legacy spellings ``inet_aton`` accepts and browsers
  still honour (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) -- are checked as addresses;
- names are resolved once, and refused if *any* address they resolve to is internal (so a
  name resolving to one public and one private address cannot win a race);
- the connection goes to the addresses just checked: :class:`GuardedResolver` is aiohttp's
  resolver, so the connector never looks the name up a second time and a DNS answer that
  changes between check and connect (rebinding) is never used unchecked;
- redirects are not followed (the dispatcher's requests say so; a 3xx is a failed attempt).

Internal = anything not globally routable (loopback, RFC 1918, link-local incl.
169.254.169.254, CGNAT 100.64/10, unspecified 0.0.0.0 / ``::``, multicast, reserved,
documentation ranges), also when wrapped in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, 6to4,
NAT64 ``64:ff9b::/96``). ``allow_networks`` lets chosen networks through (tests: 127.0.0.1/32).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddrInfo = list[tuple[Any, ...]]
GetAddrInfo = Callable[[str, int], Awaitable[AddrInfo]]
"""``(host, port) -> getaddrinfo() results``; the event loop's by default, a fake in tests."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")
_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class EgressRefused(Exception):
    """A host endpoint names or resolves to an address webhooks may not reach."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"refusing webhook to {host!r}: {address} is {reason} "
                         f"(webhooks.allow_networks lets chosen networks through)")
        self.host, self.address, self.reason = host, address, reason


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, if it is one -- also legacy IPv4 forms, else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:  # decimal, octal and hex parts, 1-4 of them: what inet_aton (and curl) accept
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is internal (a short noun), or None when it is globally routable."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


class EgressGuard:
    """Decides which addresses webhooks may reach, and resolves names under that rule.

    Args:
        allow_networks: networks allowed although internal (``webhooks.allow_networks``).
        getaddrinfo: name lookup; default the running loop's ``getaddrinfo`` (a thread).
    """

    def __init__(self, allow_networks: Sequence[IPNetwork] = (), *,
                 getaddrinfo: GetAddrInfo | None = None) -> None:
        self.allow_networks = tuple(allow_networks)
        self._getaddrinfo = getaddrinfo

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be reached (None: it may)."""
        if any(ip in net for net in self.allow_networks if net.version == ip.version):
            return None
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = self.refusal(inner)
            return None if why is None else f"{why} (inside {ip})"
        return _kind(ip)

    def check_address(self, host: str, ip: IPAddress) -> None:
        """Raise :class:`EgressRefused` if ``ip`` (what ``host`` names) may not be reached."""
        why = self.refusal(ip)
        if why is not None:
            raise EgressRefused(host, str(ip), why)

    def check_url(self, url: str) -> None:
        """Refuse a URL whose host is an internal address literal (names: see :meth:`resolve`).

        Needed because aiohttp connects to IP literals without asking the resolver.
        """
        host = URL(url).raw_host or ""
        ip = literal_address(host)
        if ip is not None:
            self.check_address(host, ip)

    async def resolve(self, host: str, port: int,
                      family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        """Every address of ``host``, each checked; :class:`EgressRefused` if any is internal."""
        ip = literal_address(host)
        if ip is not None:
            self.check_address(host, ip)
            fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            return [_result(host, str(ip), port, fam, 0)]
        infos = await self._lookup(host, port, family)
        results: list[ResolveResult] = []
        for fam, _type, proto, _canon, sockaddr in infos:
            if fam not in (socket.AF_INET, socket.AF_INET6):
                continue
            addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            self.check_address(host, addr)  # any internal answer refuses the name
            results.append(_result(host, str(addr), int(sockaddr[1]), fam, proto))
        if not results:
            raise OSError(f"{host!r} resolved to no IPv4/IPv6 address")
        return results

    async def _lookup(self, host: str, port: int, family: int) -> AddrInfo:
        if self._getaddrinfo is not None:
            return await self._getaddrinfo(host, port)
        loop = asyncio.get_running_loop()
        return await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)

    def resolver(self) -> GuardedResolver:
        """An aiohttp resolver that goes through this guard (use with ``use_dns_cache=False``)."""
        return GuardedResolver(self)


def _result(host: str, ip: str, port: int, family: int, proto: int) -> ResolveResult:
    return ResolveResult(hostname=host, host=ip, port=port, family=family, proto=proto,
                         flags=_NUMERIC_FLAGS)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver whose answers are the guard's checked addresses, and only those."""

    def __init__(self, guard: EgressGuard) -> None:
        self.guard = guard

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return await self.guard.resolve(host, port, family)

    async def close(self) -> None:
        return None


def refused_cause(exc: BaseException) -> EgressRefused | None:
    """The :class:`EgressRefused` behind ``exc`` (aiohttp may wrap the resolver's error)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, EgressRefused):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
