"""``roomwarden console`` as its command runs it (:func:`serve_console`): a real SQLite audit
store, the real broker, /healthz and /metrics, logins, and the auditor export over HTTP -- the
same bundle ``roomwarden export`` writes, verified by ``alerts.audit.verify``; operators and
strangers are refused it."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from alerts.console.settings import ConsoleSettings, ConsoleToken
from roomwarden.broker import create_topics
from roomwarden.cli_console import serve_console
from roomwarden.settings import Settings
from tests.console_room import audit_entries, sample_room

pytestmark = pytest.mark.integration

OPERATOR = "op-" + uuid.uuid4().hex
AUDITOR = "au-" + uuid.uuid4().hex


async def test_console_command_serves_health_metrics_and_the_auditor_export(
        kafka_broker: str, tmp_path: Path) -> None:
    pytest.importorskip("alerts.audit.export", reason="audit-core's export has not landed")
    from alerts.audit import open_store

    run = uuid.uuid4().hex[:8]
    settings = Settings()
    settings.instance = f"console-{run}"
    k = settings.kafka
    k.bootstrap_servers = kafka_broker
    k.alerts_topic, k.escalations_topic, k.reviews_topic = (
        f"cc-{run}.alerts", f"cc-{run}.escalations", f"cc-{run}.reviews")
    await create_topics(kafka_broker, [k.alerts_topic, k.escalations_topic, k.reviews_topic])
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    key_path = tmp_path / "audit.key.pem"
    room = sample_room("export-room", time.time() - 120)
    store = open_store(url, key_path=key_path)
    store.append(audit_entries(room))
    store.close()

    section = ConsoleSettings(port=0, tokens=[
        ConsoleToken(name="ana", role="operator",
                     token_sha256=hashlib.sha256(OPERATOR.encode()).hexdigest()),
        ConsoleToken(name="audit-office", role="auditor", token=AUDITOR)])  # type: ignore[arg-type]
    stop = asyncio.Event()
    bound: list[str] = []
    server = asyncio.create_task(serve_console(settings, section, url, key_path, stop,
                                               on_url=bound.append))
    try:
        async with asyncio.timeout(30):
            while not bound:
                assert not server.done(), server
                await asyncio.sleep(0.05)
        base = bound[0]
        # unsafe=True: aiohttp's client keeps no cookies of IP-address hosts otherwise
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200 and (await r.json())["kafka_connected"] is True
            async with http.post(f"{base}/api/login", json={"token": OPERATOR}) as r:
                assert r.status == 200
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
            assert 'roomwarden_console_logins_total{outcome="ok"} 1.0' in text
            assert "roomwarden_console_streams 0.0" in text

            export = f"{base}/api/export?room=export-room&format=vtt"
            async with http.get(export) as r:  # the operator's session cookie
                assert r.status == 403
            http.cookie_jar.clear()
            async with http.get(export) as r:
                assert r.status == 401
            async with http.get(export, headers={"Authorization": "Bearer not-a-token-at-all"}
                                ) as r:
                assert r.status == 401
            async with http.get(f"{base}/api/export?room=nowhere",
                                headers={"Authorization": f"Bearer {AUDITOR}"}) as r:
                assert r.status == 404
            async with http.get(export, headers={"Authorization": f"Bearer {AUDITOR}"}) as r:
                assert r.status == 200, await r.text()
                assert r.content_type == "application/gzip"
                bundle = tmp_path / "download.tar.gz"
                bundle.write_bytes(await r.read())
        from alerts.audit.verify import verify_bundle

        result = verify_bundle(bundle)
        assert result.ok, result.problem
        assert result.room_id == "export-room"
        assert result.records == len(room.transcripts) + len(room.clips)
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 20) == 0
