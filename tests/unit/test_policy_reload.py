"""roomwarden.policy_reload: a changed pack is applied, a broken one never replaces the old."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from policy.engine import PolicyEngine
from policy.rules import RulePack
from roomwarden.policy_reload import PolicyReloader

PACK = """\
name: reload-test
version: "{version}"
categories:
  abuse:
    severity: medium
    terms: ["{term}"]
"""


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()  # some filesystems keep mtime at 1 s granularity: make every write visible
    bump = getattr(write, "bump", 0) + 1
    write.bump = bump  # type: ignore[attr-defined]
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000))


def build(path: Path) -> PolicyEngine:
    return PolicyEngine(RulePack.load(path), windows=None)


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "rules.yaml"
        write(self.path, PACK.format(version="1", term="you idiot"))
        self.active = build(self.path)
        self.applied: list[PolicyEngine] = []
        self.registry = CollectorRegistry()
        self.reloader = PolicyReloader(self.path, self.applied.append, build, 0.05,
                                       active=self.active, registry=self.registry, sighup=False)

    def count(self, outcome: str) -> float:
        v = self.registry.get_sample_value("roomwarden_policy_reloads_total",
                                           {"outcome": outcome})
        return v or 0.0

    def info_sha256(self) -> str | None:
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name == "roomwarden_policy_info":
                    return s.labels["sha256"]
        return None


async def test_unchanged_file_is_not_reloaded(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert await h.reloader.check() == "unchanged"
    assert await h.reloader.check() == "unchanged"
    assert h.applied == [] and h.info_sha256() == h.active.pack.sha256


async def test_good_change_is_applied(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    write(h.path, PACK.format(version="2", term="you moron"))
    assert await h.reloader.check() == "applied"
    [engine] = h.applied
    assert engine.pack.version == "2" and h.reloader.active is engine
    assert engine.pack.sha256 != h.active.pack.sha256
    assert h.info_sha256() == engine.pack.sha256
    assert h.count("applied") == 1


@pytest.mark.parametrize("broken", [
    PACK.format(version="2", term="x").replace("abuse:", "weapons:"),   # unknown category
    PACK.format(version="2", term="x") + "    regex: ['(a+)+']\n",      # catastrophic regex
    "name: [unclosed\n",                                               # not YAML
])
async def test_broken_change_keeps_old_pack_then_fix_applies(tmp_path: Path, broken: str,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    h = Harness(tmp_path)
    old_sha = h.active.pack.sha256
    write(h.path, broken)
    assert await h.reloader.check() == "failed"
    assert h.applied == [] and h.reloader.active is h.active
    assert h.reloader.active_sha256 == old_sha == h.info_sha256()
    assert h.count("failed") == 1
    assert await h.reloader.check() == "unchanged"  # same broken bytes: not retried
    assert h.count("failed") == 1
    write(h.path, PACK.format(version="3", term="you moron"))
    assert await h.reloader.check() == "applied"
    assert h.applied[-1].pack.version == "3" and h.info_sha256() == h.applied[-1].pack.sha256


async def test_missing_file_keeps_old_pack(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.path.unlink()
    assert await h.reloader.check() == "failed"
    assert h.reloader.active is h.active and h.applied == []


async def test_polling_applies_a_change_and_survives_a_bad_one(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    await h.reloader.start()
    try:
        write(h.path, "name: p\ncategories: {abuse: {severity: hgh, terms: [a]}}\n")
        await _until(lambda: h.count("failed") == 1)
        assert h.applied == []
        write(h.path, PACK.format(version="2", term="you moron"))
        await _until(lambda: len(h.applied) == 1)
        assert h.reloader.active_sha256 == h.applied[0].pack.sha256
    finally:
        await h.reloader.stop()


async def test_request_rechecks_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.reloader = PolicyReloader(h.path, h.applied.append, build, 0, active=h.active,
                                registry=CollectorRegistry(), sighup=False)
    await h.reloader.start()
    try:
        write(h.path, PACK.format(version="2", term="you moron"))
        h.reloader.request()
        await _until(lambda: len(h.applied) == 1)
    finally:
        await h.reloader.stop()


def test_negative_interval_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    with pytest.raises(ValueError, match="interval_s"):
        PolicyReloader(h.path, h.applied.append, build, -1, active=h.active)


async def _until(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
