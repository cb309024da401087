"""``roomwarden moderate FILE...``: the same pipeline over recorded files, as fast as it goes.

Each file is one speaker (named by the file's stem) of one room. Alerts go to stdout -- with
``--json`` one CloudEvents JSON object (structured mode) per line and nothing else -- and, when
Kafka is configured, to the alerts topic as well. Progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

from alerts.envelope import alert_record, decode_record
from asr.frames import Transcript
from ingest.files import file_segments
from policy.frames import Alert
from roomwarden.app import running_pipeline, vad_params
from roomwarden.settings import Settings


def alert_json(alert: Alert, source: str) -> str:
    """An alert as one line of CloudEvents JSON (structured content mode)."""
    record = alert_record(alert, source=source)
    attributes, data = decode_record(record.headers, record.value)
    return json.dumps({**attributes, "datacontenttype": "application/json", "data": data},
                      ensure_ascii=False, sort_keys=True)


async def run_moderate(
    settings: Settings,
    files: list[Path],
    *,
    room_id: str,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    source = f"/roomwarden/{settings.instance}"
    counts = {"segments": 0, "seconds": 0.0}

    def on_alert(alert: Alert, _latency: float | None) -> None:
        if as_json:
            print(alert_json(alert, source), file=out, flush=True)
        else:
            seg = alert.transcript.segment
            print(f"{alert.speaker_id}\t{seg.start_offset_s:8.2f}-{seg.end_offset_s:8.2f}\t"
                  f"{alert.category}/{alert.severity}\t{alert.rule_id}\t{alert.transcript.text}",
                  file=out, flush=True)

    def on_transcript(t: Transcript) -> None:
        counts["segments"] += 1
        counts["seconds"] += t.segment.duration_s
        print(f"\r{counts['segments']} segments, {counts['seconds']:.0f} s of speech "
              "transcribed", end="", file=err, flush=True)

    t0 = time.monotonic()
    kafka = bool(settings.kafka.bootstrap_servers)
    async with running_pipeline(settings, kafka=kafka, on_alert=on_alert,
                                on_transcript=on_transcript, shed=False) as running:
        for path in files:
            async for segment in file_segments(path, room_id, path.stem, vad_params(settings)):
                await running.pipeline.segments.put(segment)
    print(f"\n{len(files)} file(s), {counts['segments']} segments, "
          f"{len(running.pipeline.alerts)} alerts in {time.monotonic() - t0:.1f} s",
          file=err, flush=True)
    return 0
