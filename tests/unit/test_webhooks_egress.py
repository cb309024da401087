"""The SSRF guard: every internal spelling refused, names checked on every address they
resolve to, the resolver hands aiohttp only checked addresses, allow_networks lets tests in."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from yarl import URL

from alerts.webhooks.egress import (
    EgressGuard,
    EgressRefused,
    literal_address,
    refused_cause,
)

PUBLIC = "93.184.216.34"


class FakeDns:
    """``getaddrinfo`` over a table; counts lookups; a list of answers is served in turn."""

    def __init__(self, table: dict[str, list[list[str]] | list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        answers = self.table.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answers and isinstance(answers[0], list):  # rebinding: one answer per lookup
            current = answers.pop(0) if len(answers) > 1 else answers[0]
        else:
            current = answers
        out = []
        for ip in current:
            assert isinstance(ip, str)
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if fam == socket.AF_INET6 else (ip, port)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out


DNS = {
    "public.test": [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"],
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": [PUBLIC, "192.168.1.10"],
    "localhost": ["127.0.0.1", "::1"],
    "mapped.test": ["::ffff:10.0.0.1"],
}

REFUSED_URLS = [
    "http://127.0.0.1/", "http://127.1.2.3:8080/", "http://[::1]/",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://10.255.255.255/",
    "http://172.16.0.1/", "http://172.31.255.254/", "http://192.168.0.1/", "http://0.0.0.0/",
    "http://[::]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/",
    "http://[::ffff:192.168.1.1]/", "http://[64:ff9b::a00:1]/", "http://[2002:7f00:1::]/",
    "http://[fe80::1]/", "http://[fd12:3456::1]/", "http://100.64.0.1/", "http://224.0.0.1/",
    "http://240.0.0.1/", "http://2130706433/", "http://017700000001/", "http://0x7f000001/",
    "http://0x7f.0.0.1/", "http://0177.0.0.01/", "http://127.1/", "http://0/",
    "http://3232235777/", "http://0xa9fea9fe/",
    "http://localhost/", "http://internal.test/", "http://metadata.test/",
    "http://mixed.test/", "http://mapped.test/",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_internal_destinations_are_refused(url: str) -> None:
    dns = FakeDns(DNS)
    guard = EgressGuard(getaddrinfo=dns)
    host = URL(url).raw_host or ""
    with pytest.raises(EgressRefused):
        guard.check_url(url)
        await guard.resolve(host, 80)


@pytest.mark.parametrize("host", ["public.test", PUBLIC, "[2606:2800:220:1:248:1893:25c8:1946]"])
async def test_public_destinations_resolve(host: str) -> None:
    guard = EgressGuard(getaddrinfo=FakeDns(DNS))
    guard.check_url(f"https://{host}/hook")
    results = await guard.resolve(host.strip("[]"), 443)
    assert results and all(ipaddress.ip_address(r["host"]).is_global for r in results)
    assert all(r["port"] == 443 for r in results)


@pytest.mark.parametrize(("spelling", "address"), [
    ("2130706433", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"), ("0177.0.0.01", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("10.0.0.1", "10.0.0.1"),
])
def test_legacy_and_bracketed_spellings_are_addresses(spelling: str, address: str) -> None:
    assert str(literal_address(spelling)) == address


@pytest.mark.parametrize("name", ["example.com", "deadbeef", "cafe.test", "1e100.net", "a.b.c"])
def test_names_are_not_mistaken_for_addresses(name: str) -> None:
    assert literal_address(name) is None


async def test_a_name_with_one_internal_answer_is_refused_whole() -> None:
    guard = EgressGuard(getaddrinfo=FakeDns(DNS))
    with pytest.raises(EgressRefused, match="192.168.1.10 is private"):
        await guard.resolve("mixed.test", 443)


async def test_rebinding_each_connection_gets_its_own_checked_lookup() -> None:
    """A name that answers public first, then internal: the second lookup is refused, and
    the resolver never returns an address it did not check (aiohttp connects to its answer)."""
    dns = FakeDns({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    resolver = EgressGuard(getaddrinfo=dns).resolver()
    first = await resolver.resolve("rebind.test", 443)
    assert [r["host"] for r in first] == [PUBLIC]
    assert first[0]["flags"] & socket.AI_NUMERICHOST  # aiohttp will not look it up again
    with pytest.raises(EgressRefused, match="127.0.0.1 is loopback"):
        await resolver.resolve("rebind.test", 443)
    assert dns.lookups == ["rebind.test", "rebind.test"]


async def test_allow_networks_lets_chosen_internal_networks_through() -> None:
    guard = EgressGuard([ipaddress.ip_network("127.0.0.1/32"),
                         ipaddress.ip_network("10.1.0.0/16")], getaddrinfo=FakeDns(DNS))
    guard.check_url("http://127.0.0.1:9000/")
    assert [r["host"] for r in await guard.resolve("internal.test", 80)] == ["10.1.2.3"]
    with pytest.raises(EgressRefused):
        guard.check_url("http://127.0.0.2/")
    with pytest.raises(EgressRefused):  # ::1 is not in 127.0.0.1/32
        await guard.resolve("localhost", 80)
    # a mapped address inside an allowed network is allowed (same machine, other spelling)
    guard.check_url("http://[::ffff:127.0.0.1]/")


@pytest.mark.parametrize(("ip", "why"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("0.0.0.0", "unspecified"),
    ("169.254.169.254", "link-local"), ("10.0.0.1", "private"), ("224.0.0.1", "multicast"),
    ("100.64.0.1", "not globally routable"), ("::ffff:10.0.0.1", "private (inside"),
])
def test_refusals_say_why(ip: str, why: str) -> None:
    refusal = EgressGuard().refusal(ipaddress.ip_address(ip))
    assert refusal is not None and refusal.startswith(why)


async def test_unknown_name_is_an_ordinary_error_not_a_refusal() -> None:
    guard = EgressGuard(getaddrinfo=FakeDns({}))
    with pytest.raises(OSError) as info:
        await guard.resolve("nowhere.test", 80)
    assert refused_cause(info.value) is None


def test_refused_cause_finds_a_wrapped_refusal() -> None:
    refusal = EgressRefused("h", "10.0.0.1", "private")
    try:
        try:
            raise refusal
        except EgressRefused as exc:
            raise OSError("connect failed") from exc
    except OSError as outer:
        assert refused_cause(outer) is refusal
