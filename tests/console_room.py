"""A live-looking room for the console's browser test: the sample room's script (real recorded
speech from ``roomwarden/samples``), transcribed as the script says, judged by the real default
rule pack and escalation ladder, with evidence clips cut from the speakers' WAV files."""

from __future__ import annotations

import hashlib
import io
import json
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.envelope import transcript_data
from alerts.evidence_record import evidence_metadata
from asr.frames import Transcript, Word
from asr.recognizer import transcript_id
from ingest.frames import SpeechSegment
from policy.engine import PolicyEngine
from policy.escalation import Escalation, EscalationPolicy, Escalator
from policy.frames import Alert
from policy.rules import RulePack, default_pack_path

SAMPLES = Path(__file__).resolve().parents[1] / "roomwarden" / "samples"
MODEL_ID = "tiny.en@1a5afae06a4d"
DISPLAY = {"alice": "Alice (host)", "bob": "Bob", "carol": "Carol"}


@dataclass(frozen=True, slots=True)
class Room:
    room_id: str
    transcripts: list[Transcript]
    alerts: list[Alert]
    clips: dict[str, bytes]  # segment id -> WAV
    escalations: list[Escalation]


def wav_bytes(pcm: bytes, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def speaker_pcm(speaker: str) -> bytes:
    with wave.open(str(SAMPLES / f"speaker_{speaker}.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        return w.readframes(w.getnframes())


def sample_room(room_id: str, started_at: float, *, engine: PolicyEngine | None = None,
                speakers: dict[str, str] | None = None) -> Room:
    """The sample room as if it had started at ``started_at`` (Unix s). ``speakers`` renames
    the speakers (another room with the same script)."""
    script = json.loads((SAMPLES / "room.json").read_text())
    engine = engine or PolicyEngine(RulePack.load(default_pack_path()))
    pcm = {name: speaker_pcm(name) for name in script["speakers"]}
    transcripts, alerts, clips = [], [], {}
    for seq, u in enumerate(script["utterances"]):
        who = u["speaker"]
        cut = pcm[who][int(u["start_s"] * 16_000) * 2:int(u["end_s"] * 16_000) * 2]
        speaker_id = (speakers or {}).get(who, who)
        segment = SpeechSegment(
            room_id=room_id, speaker_id=speaker_id,
            segment_id=SpeechSegment.make_id(room_id, speaker_id, u["start_s"], cut), seq=seq,
            pcm=cut, start_offset_s=u["start_s"], end_offset_s=u["end_s"],
            start_time=started_at + u["start_s"], end_time=started_at + u["end_s"],
            end_monotonic=0.0, speaker_name=DISPLAY.get(speaker_id, speaker_id.title()))
        words = u["text"].split()
        step = (u["end_s"] - u["start_s"]) / max(len(words), 1)
        transcript = Transcript(
            segment=segment, transcript_id=transcript_id(segment.segment_id, MODEL_ID),
            text=u["text"], language="en",
            words=tuple(Word(w, u["start_s"] + i * step, u["start_s"] + (i + 1) * step, 0.93)
                        for i, w in enumerate(words)),
            confidence=0.93, confidence_class="confident", model_id=MODEL_ID, asr_seconds=0.2)
        transcripts.append(transcript)
        found = engine.evaluate(transcript)
        alerts.extend(found)
        if found:
            clips[segment.segment_id] = wav_bytes(cut)
    escalator = Escalator(EscalationPolicy())
    escalations = escalator.observe(alerts)
    return Room(room_id, transcripts, alerts, clips, escalations)


def audit_entries(room: Room) -> list[Any]:
    """The room's transcripts and evidence clips as audit store entries (the alerts come live
    from Kafka in the test)."""
    from alerts.audit import AuditEntry

    entries = []
    for t in room.transcripts:
        entries.append(AuditEntry(room.room_id, "transcript", t.transcript_id,
                                  t.segment.end_time, transcript_data(t)))
        clip = room.clips.get(t.segment.segment_id)
        if clip is not None:  # as the audit recorder stores an evidence record
            s = t.segment
            alert_ids = [a.alert_id for a in room.alerts
                         if a.transcript.segment.segment_id == s.segment_id]
            metadata = evidence_metadata(s, alert_ids=alert_ids,
                                         sha256=hashlib.sha256(clip).hexdigest())
            entries.append(AuditEntry(room.room_id, "evidence", s.segment_id, s.end_time,
                                      metadata, clip))
    return entries
