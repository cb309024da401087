"""``roomwarden demo``: the whole product on embedded defaults, in one command.

Starts the embedded Kafka-protocol broker (unless one is configured), the pipeline and the WHIP
endpoint on 127.0.0.1, then plays the sample room's three speakers over real WebRTC at real-time
pace, prints each alert the moment Kafka acknowledges it, reads the alerts back from the topic
and checks them against the room's script. Exit status 0 means every expected alert arrived
exactly once and nothing else did.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from datetime import datetime
from typing import TextIO

import structlog
from pydantic import SecretStr

from alerts.envelope import decode_record
from ingest.whip_client import publish_file
from policy.frames import Alert
from roomwarden.app import running_pipeline, serving
from roomwarden.broker import LocalBroker
from roomwarden.readback import end_offsets, read_records
from roomwarden.sample_room import check_alerts, load_sample_room, observed_from_events
from roomwarden.settings import Settings

log = structlog.get_logger(__name__)


def _unix(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


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

    # Only this run's alerts: the start offsets may be short of the true end on Tansu (see
    # readback), so an earlier run's last alerts could otherwise be read again.
    events = [decode_record(list(r.headers), r.value)[1] for r in records]
    observed = observed_from_events(
        (e for e in events if _unix(str(e["detected_at"])) >= started_at), room.room_id)
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
    print("demo " + ("passed" if check.ok else "FAILED"), file=out, flush=True)
    return 0 if check.ok else 1
