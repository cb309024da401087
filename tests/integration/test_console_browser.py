"""The operator console in a real browser (Debian's headless Chromium driven by Playwright):
an operator logs in, sees alerts arrive live while the test publishes them on the real broker,
opens one (the minute of conversation before it, from a real SQLite audit store), plays its
evidence clip (real recorded speech), dismisses it -- and the review is on Kafka.

``ROOMWARDEN_SCREENSHOT=1`` also saves the console with its live alerts to ``docs/console.png``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from alerts.console.export_route import audit_exporter
from alerts.console.live import ConsoleTopics
from alerts.console.server import running_console
from alerts.console.settings import ConsoleSettings, ConsoleToken
from alerts.envelope import alert_record, decode_record
from alerts.escalation_record import escalation_record
from alerts.publisher import KafkaPublisher, PublisherParams
from policy.engine import PolicyEngine
from policy.frames import Alert, MatchSpan
from policy.rules import RulePack, default_pack_path
from roomwarden.broker import create_topics
from tests.console_room import audit_entries, sample_room

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
OPERATOR_TOKEN = "operator-" + uuid.uuid4().hex
AUDITOR_TOKEN = "auditor-" + uuid.uuid4().hex
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--autoplay-policy=no-user-gesture-required", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--mute-audio"]


def _playwright() -> Any:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (Debian package `chromium`)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; the system "
                    "Chromium is used, `playwright install` is not needed)")
    return async_playwright


def hostile_alert(alert: Alert) -> Alert:
    """An alert whose transcript carries HTML (someone said it, or a display name did)."""
    text = '<img src=x onerror="window.__pwned=1"> shut up loser'
    transcript = dataclasses.replace(alert.transcript, text=text,
                                     transcript_id="f" * 32)
    start = text.index("shut up loser")
    return dataclasses.replace(alert, transcript=transcript, alert_id=str(uuid.uuid4()),
                               match=MatchSpan(start, start + 13, "shut up loser"))


async def test_operator_sees_a_live_alert_plays_its_clip_and_dismisses_it(
        kafka_broker: str, kafka_consume: Any, tmp_path: Path) -> None:
    async_playwright = _playwright()
    from alerts.audit import open_store

    run = uuid.uuid4().hex[:8]
    topics = ConsoleTopics(alerts=f"cb-{run}.alerts", escalations=f"cb-{run}.escalations",
                           reviews=f"cb-{run}.reviews")
    await create_topics(kafka_broker, topics.all(), partitions=3)

    # Two rooms talking right now: the sample script, heard and judged for real.
    engine = PolicyEngine(RulePack.load(default_pack_path()))
    now = time.time()
    friday = sample_room("friday-lounge", now - 75, engine=engine)
    stage = sample_room("stage-2", now - 70, engine=engine,
                        speakers={"alice": "dana", "bob": "eli", "carol": "fay"})
    assert len(friday.alerts) == 5, [a.rule_id for a in friday.alerts]
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    store.append(audit_entries(friday) + audit_entries(stage))
    the_alert = next(a for a in friday.alerts if a.rule_id == "abuse.shut_up_loser")
    others = [a for a in friday.alerts if a is not the_alert] + [
        a for a in stage.alerts if a.category in ("violence", "fraud")]

    settings = ConsoleSettings(host="127.0.0.1", port=0, tokens=[
        ConsoleToken(name="ana", role="operator", token=OPERATOR_TOKEN),  # type: ignore[arg-type]
        ConsoleToken(name="audit-office", role="auditor", token=AUDITOR_TOKEN)])  # type: ignore[arg-type]
    publisher = KafkaPublisher(PublisherParams(bootstrap_servers=kafka_broker))
    await publisher.start()

    async def publish(records: list[Any]) -> None:
        acks = [await publisher.publish(r) for r in records]
        await asyncio.gather(*acks)

    try:
        async with running_console(settings, bootstrap_servers=kafka_broker, topics=topics,
                                   store=store, exporter=audit_exporter(store),
                                   source="/roomwarden/console-test") as console, \
                async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1500, "height": 1000})
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(console.url)
                    else outside.append(r.url))
            try:
                await page.goto(console.url)
                await page.fill("#token", "wrong-token-000000000")
                await page.click("#login")
                await page.wait_for_selector("#login-error:not([hidden])")
                await page.fill("#token", OPERATOR_TOKEN)
                await page.click("#login")
                await page.wait_for_url(f"{console.url}/console")
                await page.wait_for_selector("#live:not(.off)")  # the stream is open
                assert await page.locator("#alerts tr").count() == 0

                # Published while the page is open: it must arrive live.
                t0 = time.monotonic()
                await publish([alert_record(the_alert, source="/roomwarden/t",
                                            topic=topics.alerts)])
                acked = time.monotonic()
                row = page.locator(f'tr[data-alert-id="{the_alert.alert_id}"]')
                await row.wait_for(timeout=15_000)
                shown = time.monotonic()
                await publish([alert_record(a, source="/roomwarden/t", topic=topics.alerts)
                               for a in others]
                              + [escalation_record(e, source="/roomwarden/t",
                                                   topic=topics.escalations)
                                 for e in friday.escalations + stage.escalations])
                # (no wait_for_function: the console's CSP forbids the eval it relies on)
                for alert in others:
                    await page.locator(f'tr[data-alert-id="{alert.alert_id}"]').wait_for(
                        timeout=15_000)
                assert await page.locator("#alerts tr").count() == 1 + len(others)
                await page.wait_for_selector('#risk li[data-room-id="friday-lounge"]')

                # Open it: the minute before, the flagged span, speaker, rule, score, the clip.
                await row.click()
                await page.wait_for_selector("#context .line.flagged mark")
                assert await page.inner_text("#context .line.flagged mark") == "Shut up loser"
                lines = await page.locator("#context .line").all_inner_texts()
                assert len(lines) >= 8 and any("casino bonus code" in line for line in lines)
                assert not any("Please be respectful" in line for line in lines)  # said after
                assert "Bob" in await page.inner_text("#d-speaker")
                assert "abuse.shut_up_loser" in await page.inner_text("#d-rule")
                assert "ASR confidence 93 %" in await page.inner_text("#d-score")

                await page.wait_for_selector("#clip")
                played = await page.evaluate("""async () => {
                    const audio = document.getElementById('clip');
                    await audio.play();
                    await new Promise((done) => {
                        const check = () => (audio.ended || audio.currentTime > 0.3)
                            ? done() : setTimeout(check, 50);
                        check();
                    });
                    return {currentTime: audio.currentTime, ended: audio.ended,
                            duration: audio.duration};
                }""")
                assert played["ended"] or played["currentTime"] > 0
                assert played["duration"] == pytest.approx(2.154, abs=0.01)

                await page.fill("#note", "quoting a film, not aimed at anyone")
                clicked = time.monotonic()
                await page.click("#act-dismiss")
                await row.locator(".status.dismiss").wait_for(timeout=15_000)
                reviewed = time.monotonic()
                print(f"\nconsole: alert acked by Kafka -> row in the browser "
                      f"{1000 * (shown - acked):.0f} ms (publish+ack {1000 * (acked - t0):.0f} "
                      f"ms); dismiss click -> review acked and shown "
                      f"{1000 * (reviewed - clicked):.0f} ms")
                assert "dismissed by ana (operator)" in await page.inner_text("#d-review")
                if os.environ.get("ROOMWARDEN_SCREENSHOT") == "1":
                    await page.wait_for_timeout(2600)  # let the "new row" highlight fade
                    await page.evaluate("document.getElementById('detail').scrollTop = 0")
                    shot = tmp_path / "console.png"
                    await page.screenshot(path=str(shot))
                    (ROOT / "docs").mkdir(exist_ok=True)
                    shutil.copyfile(shot, ROOT / "docs" / "console.png")
                # What a room says is text, never markup: a transcript carrying HTML shows as
                # written and runs nothing (the page uses textContent; CSP forbids inline code).
                hostile = hostile_alert(the_alert)
                await publish([alert_record(hostile, source="/roomwarden/t",
                                            topic=topics.alerts)])
                cell = page.locator(f'tr[data-alert-id="{hostile.alert_id}"] td.text')
                await cell.wait_for(timeout=15_000)
                assert "<img src=x onerror=" in await cell.inner_text()
                assert await page.locator("#alerts img").count() == 0
                assert await page.evaluate("window.__pwned === undefined")
                assert outside == []  # the page only ever talked to the console
            finally:
                await browser.close()
    finally:
        await publisher.stop()
        store.close()

    reviews = await kafka_consume(kafka_broker, topics.reviews, 1, 15.0)
    assert len(reviews) == 1
    attributes, data = decode_record(reviews[0].headers, reviews[0].value)
    assert attributes["type"] == "io.roomwarden.moderation.review.v1"
    assert reviews[0].key == b"friday-lounge"
    assert (data["alert_id"], data["action"], data["reviewer"], data["role"]) == (
        the_alert.alert_id, "dismiss", "ana", "operator")
    assert data["note"] == "quoting a film, not aimed at anyone"
