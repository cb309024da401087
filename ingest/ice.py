"""Control which local addresses aioice offers as ICE host candidates.

aioice (aiortc's ICE agent) gathers host candidates from every interface of the machine except
127.0.0.1 and has no API to choose them. Two needs make choosing necessary:

* Demos and tests keep WebRTC on loopback: with 127.0.0.1 left out, two aiortc peers on one
  machine would talk over the LAN address instead (or not at all in a sandbox without one).
* A production server with several NICs should offer only its media-facing address.

The only seam is the module-level ``aioice.ice.get_host_addresses``, which
``Connection.gather_candidates`` looks up at call time, so replacing it affects every ICE agent
created afterwards in this process (process-global, like the setting it implements).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import aioice.ice

_original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: list[str] | None) -> None:
    """Make ICE gather host candidates only on ``addresses`` (``None``: aioice's own choice).

    IPv4 addresses are offered when the agent uses IPv4, IPv6 ones when it uses IPv6. Loopback
    (``127.0.0.1``) is allowed, which is the point. Candidates from STUN/TURN servers are not
    affected: configure no ICE servers to keep traffic local.

    Args:
        addresses: literal IP addresses, or ``None`` to restore aioice's default behaviour.

    Raises:
        ValueError: an entry is not an IP address (hostnames are not resolved here).
    """
    if addresses is None:
        aioice.ice.get_host_addresses = _original  # type: ignore[assignment]
        return
    parsed = [ipaddress.ip_address(a) for a in addresses]  # ValueError names the bad entry
    v4 = [str(a) for a in parsed if a.version == 4]
    v6 = [str(a) for a in parsed if a.version == 6]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return (v4 if use_ipv4 else []) + (v6 if use_ipv6 else [])

    aioice.ice.get_host_addresses = get_host_addresses


def host_addresses_restricted() -> bool:
    """True while :func:`restrict_host_addresses` has replaced aioice's address lookup."""
    return aioice.ice.get_host_addresses is not _original
