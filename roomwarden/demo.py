"""``roomwarden demo``: the whole product on embedded defaults, in one command.

Starts the embedded Kafka-protocol broker (unless one is configured), the pipeline and the WHIP
endpoint on 127.0.0.1, then plays the sample room's three speakers over real WebRTC at real-time
pace, prints each alert the moment Kafka acknowledges it, reads the alerts back from the topic
and checks them against the room's script. Meanwhile the audit recorder (the same code as
``roomwarden worker audit``) writes every transcript, alert, escalation and evidence clip into the
audit log (``audit.url``); at the end the demo checks that every alert is in it, that the room's
hash chain verifies, and prints the command that exports it for an auditor. Exit status 0 means
every expected alert arrived exactly once, nothing else did, and the audit log has them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from typing import TextIO

import structlog
from pydantic import SecretStr

from alerts.envelope import decode_record
from alerts.record_checks import unix_time
from ingest.whip_client import publish_file
from policy.frames import Alert
from roomwarden.app import running_pipeline, serving
from roomwarden.broker import LocalBroker, create_topics
from roomwarden.readback import end_offsets, read_records
from roomwarden.sample_room import check_alerts, load_sample_room, observed_from_events
from roomwarden.settings import Settings

log = structlog.get_logger(__name__)


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


async def run_demo(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the process exit status."""
    room = load_sample_room()
    async with contextlib.AsyncExitStack() as stack:
        if not settings.kafka.bootstrap_servers:
            broker = await stack.enter_async_context(LocalBroker())
            settings.kafka.bootstrap_servers = broker.bootstrap_servers
            print(f"embedded Kafka-protocol broker (tansu) on {broker.bootstrap_servers}", file=out)
        bootstrap = settings.kafka.bootstrap_servers
        # Demo WebRTC stays on this machine: loopback candidates only.
        settings.webrtc.ice_host_addresses = ["127.0.0.1"]
        token = secrets.token_urlsafe(16)
        settings.http.whip_token = SecretStr(token)
        since = await end_offsets(bootstrap, settings.kafka.alerts_topic)
        recorder_stop = asyncio.Event()
        recorder = await _start_recorder(settings, recorder_stop)

        def print_alert(alert: Alert, latency: float | None) -> None:
            seg = alert.transcript.segment
            lat = f"{latency:.2f} s after end of speech" if latency is not None else ""
            print(f"  [{_clock(seg.start_offset_s)}-{_clock(seg.end_offset_s)}] ALERT "
                  f"{alert.speaker_id:<6} {alert.category + '/' + alert.severity:<16} "
                  f"rule={alert.rule_id} \"{alert.match.text}\" in \"{alert.transcript.text}\" "
                  f"({lat})", file=out, flush=True)

        print(f"room {room.room_id}: {len(room.speakers)} speakers, "
              f"{room.duration_s:.0f} s, publishing over WebRTC (WHIP) in real time ...",
              file=out, flush=True)
        t0, started_at = time.monotonic(), time.time()
        async with running_pipeline(settings, on_alert=print_alert) as running:
            async with serving(running, "127.0.0.1", 0) as url:
                await asyncio.gather(*(
                    publish_file(f"{url}/whip/{room.room_id}/{speaker}", path, token=token)
                    for speaker, path in room.speakers.items()
                ))
        print(f"room finished after {time.monotonic() - t0:.1f} s; reading alerts back "
              f"from {settings.kafka.alerts_topic} ...", file=out, flush=True)
        records = await read_records(bootstrap, settings.kafka.alerts_topic, since)
        alert_ids = [str(decode_record(list(r.headers), r.value)[1]["alert_id"])
                     for r in records]
        audited = await _audit_summary(settings, room.room_id, alert_ids, recorder,
                                       recorder_stop, out)

    # Only this run's alerts: the start offsets may be short of the true end on Tansu (see
    # readback), so an earlier run's last alerts could otherwise be read again.
    events = [decode_record(list(r.headers), r.value)[1] for r in records]
    observed = observed_from_events(
        (e for e in events if unix_time(str(e["detected_at"])) >= started_at), room.room_id)
    check = check_alerts(room, observed)
    print(f"\nsummary: {len(observed)} alerts on Kafka, {len(room.expected)} expected, "
          f"{len(room.near_misses)} benign/near-miss utterances", file=out)
    for utt, obs in check.found:
        print(f"  ok       {utt.speaker:<6} {_clock(obs.start_s)}  {obs.category:<10} "
              f"{obs.rule_id:<28} \"{utt.text}\"", file=out)
    for utt in check.missing:
        print(f"  MISSING  {utt.speaker:<6} {_clock(utt.start_s)}  {utt.category:<10} "
              f"{utt.rule_id:<28} \"{utt.text}\"", file=out)
    for obs in check.unexpected:
        print(f"  UNEXPECTED {obs.speaker} {_clock(obs.start_s)} {obs.category} {obs.rule_id}",
              file=out)
    for obs in check.duplicates:
        print(f"  DUPLICATE {obs.speaker} {_clock(obs.start_s)} {obs.category} {obs.rule_id}",
              file=out)
    ok = check.ok and audited
    print("demo " + ("passed" if ok else "FAILED"), file=out, flush=True)
    return 0 if ok else 1


async def _start_recorder(settings: Settings, stop: asyncio.Event) -> asyncio.Task[int]:
    """The audit recorder as a task (its topics created first: a consumer subscribing to a
    topic that does not exist yet would not see it for minutes on the embedded broker)."""
    from roomwarden.cli_worker_audit import run_audit_worker
    from roomwarden.worker_audit import audit_topics

    assert settings.kafka.bootstrap_servers
    await create_topics(settings.kafka.bootstrap_servers,
                        audit_topics(settings.kafka, settings.audit_worker))
    settings.audit_worker.metrics_host, settings.audit_worker.metrics_port = "127.0.0.1", 0
    return asyncio.create_task(
        run_audit_worker(settings, settings.audit, settings.audit_worker, stop))


async def _audit_summary(settings: Settings, room_id: str, alert_ids: list[str],
                         recorder: asyncio.Task[int], stop: asyncio.Event, out: TextIO,
                         timeout_s: float = 60.0) -> bool:
    """Wait until the recorder has every alert, stop it, check the room's chain, print."""
    from alerts.audit import open_store

    def recorded() -> int:
        with open_store(settings.audit.url, key_path=settings.audit.key_path) as store:
            return sum(store.find("alert", a) is not None for a in alert_ids)

    deadline = time.monotonic() + timeout_s
    while (have := await asyncio.to_thread(recorded)) < len(alert_ids):
        if recorder.done() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(recorder, 30)

    def summary() -> tuple[dict[str, int], bool, str, str]:
        with open_store(settings.audit.url, key_path=settings.audit.key_path) as store:
            kinds: dict[str, int] = {}
            for entry in store.entries(room_id):
                kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
            report = store.verify_room(room_id)
            checkpoint = store.checkpoint(room_id)
            return kinds, report.ok, report.problem or "", checkpoint.key_id

    kinds, chain_ok, problem, key_id = await asyncio.to_thread(summary)
    ok = have == len(alert_ids) and chain_ok
    print(f"\naudit log {settings.audit.url}: room {room_id} holds "
          + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
          + f"; {have}/{len(alert_ids)} alerts of this run recorded; hash chain "
          + ("verifies" if chain_ok else f"BROKEN ({problem})")
          + f"; checkpoint signed by key {key_id}", file=out)
    print(f"  export for an auditor:  roomwarden export --room {room_id} -o bundle && "
          "roomwarden verify bundle", file=out, flush=True)
    return ok
