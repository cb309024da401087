"""Hot reload in a running pipeline: the rule pack file is rewritten while speech flows.

The recognizer is scripted (``FakeRecognizer`` at the ASR seam); everything after it -- the
pipeline, the real policy engine, the reloader polling the real file -- is the product's own.
Alerts before the rewrite carry the old pack's sha256, after it the new one's; a broken rewrite
in between changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

import roomwarden.app
from policy.frames import Alert
from roomwarden.app import running_pipeline
from roomwarden.settings import Settings
from tests.fakes_asr import FakeRecognizer, make_segment

pytestmark = pytest.mark.integration

OLD = b"""\
name: live
version: "1"
categories:
  abuse:
    severity: medium
    terms: ["you idiot"]
"""
NEW = OLD.replace(b'version: "1"', b'version: "2"').replace(
    b'terms: ["you idiot"]', b'terms: ["you idiot", "you moron"]')
BROKEN = NEW.replace(b"abuse:", b"weapons:")


class WarmFakeRecognizer(FakeRecognizer):
    def warmup(self) -> None:
        """The real recognizer warms its model up; nothing to do here."""

    def close(self) -> None:
        """The real recognizer frees its model; nothing to do here."""


async def test_pack_rewritten_while_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    pack = tmp_path / "rules.yaml"
    pack.write_bytes(OLD)
    lines = {0: "you idiot", 1: "you moron", 2: "you idiot", 3: "you moron", 4: "you moron"}
    recognizer = WarmFakeRecognizer(lambda seg: lines[seg.seq])
    monkeypatch.setattr(roomwarden.app, "build_recognizer", lambda settings: recognizer)
    settings = Settings()
    settings.policy.rules = pack
    settings.policy.classifier = "none"
    settings.policy.reload_interval_s = 0.05
    alerts: list[Alert] = []

    async def say(seq: int) -> Alert | None:
        before = len(alerts)
        await running.pipeline.segments.put(make_segment(seq=seq, start_offset_s=seq * 2.0,
                                                         speaker_id=f"s{seq}"))
        await asyncio.wait_for(running.pipeline.drain(), 10)
        return alerts[before] if len(alerts) > before else None

    old_sha, new_sha = hashlib.sha256(OLD).hexdigest(), hashlib.sha256(NEW).hexdigest()
    async with running_pipeline(settings, kafka=False,
                                on_alert=lambda a, _latency: alerts.append(a)) as running:
        first = await say(0)
        assert first is not None and first.policy_hash == old_sha
        assert await say(1) is None  # "you moron" is not in the old pack

        pack.write_bytes(BROKEN)  # unknown category: refused, old pack stays
        await _until(lambda: _count(running, "failed") >= 1)
        third = await say(2)
        assert third is not None and third.policy_hash == old_sha and third.policy_version == "1"
        assert await say(3) is None

        pack.write_bytes(NEW)
        await _until(lambda: _count(running, "applied") >= 1)
        fifth = await say(4)
        assert fifth is not None and fifth.rule_id == "abuse.you_moron"
        assert (fifth.policy_hash, fifth.policy_version) == (new_sha, "2")
    assert _count(running, "failed") == 1 and _count(running, "applied") == 1


def _count(running: roomwarden.app.Running, outcome: str) -> float:
    value = running.metrics.registry.get_sample_value("roomwarden_policy_reloads_total",
                                                      {"outcome": outcome})
    return value or 0.0


async def _until(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
