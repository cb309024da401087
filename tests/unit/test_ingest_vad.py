"""SpeechSegmenter on real recorded speech separated by known gaps."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ingest.frames import SAMPLE_RATE, PcmFrame, SpeechSegment
from ingest.vad import SpeechSegmenter, VadParams

EN = Path(__file__).resolve().parents[3] / "shared" / "evaldata" / "en_speech" / "pocketsphinx"
CLIPS = ["cards/001.wav", "cards/003.wav", "librivox/sense_and_sensibility_01_austen_64kb-0880.wav"]
LONG = "librivox/sense_and_sensibility_01_austen_64kb-0870.wav"  # 7.1 s, voiced throughout


def speech(name: str) -> np.ndarray:
    """A 16 kHz mono evaldata clip as int16 samples (skips the test when evaldata is absent)."""
    path = EN / name
    if not path.exists():
        pytest.skip(f"evaldata not found at {path} (tests read ../shared/evaldata)")
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def gap(seconds: float, seed: int = 0) -> np.ndarray:
    """Quiet background noise (about -60 dBFS), like a muted-but-open microphone."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 30, round(seconds * SAMPLE_RATE))).astype(np.int16)


def frames(samples: np.ndarray, frame_s: float = 0.02, *, wall0: float = 1_000.0,
           mono0: float = 50.0) -> list[PcmFrame]:
    """Cut samples into PcmFrames; monotonic advances one unit per frame (to trace anchors)."""
    n = max(1, round(frame_s * SAMPLE_RATE))
    out = []
    for i, start in enumerate(range(0, len(samples), n)):
        pcm = samples[start:start + n].tobytes()
        out.append(PcmFrame(pcm, start / SAMPLE_RATE, wall0 + start / SAMPLE_RATE, mono0 + i))
    return out


def run(samples: np.ndarray, params: VadParams | None = None, frame_s: float = 0.02,
        ) -> list[SpeechSegment]:
    seg = SpeechSegmenter("room-1", "alice", "stream-1", params or VadParams())
    out: list[SpeechSegment] = []
    for f in frames(samples, frame_s):
        out += seg.push(f)
    return out + seg.flush()


def layout() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Clips separated by 1.0-1.5 s gaps; returns the audio and each clip's (start, end) s."""
    parts, spans, t = [gap(1.0, 1)], [], 1.0
    for i, name in enumerate(CLIPS):
        clip = speech(name)
        spans.append((t, t + len(clip) / SAMPLE_RATE))
        t += len(clip) / SAMPLE_RATE
        parts += [clip, gap(1.5 - 0.25 * i, i + 2)]
        t += 1.5 - 0.25 * i
    return np.concatenate(parts), spans


def test_segments_follow_the_gaps() -> None:
    audio, spans = layout()
    p = VadParams()
    segs = run(audio, p)
    assert len(segs) == len(spans)
    for seg, (start, end) in zip(segs, spans, strict=True):
        # Onset is at the clip start and pre-roll reaches back before it; the end is the last
        # voiced frame plus at most the tail.
        assert start - p.pre_roll_ms / 1000 - 0.1 <= seg.start_offset_s <= start + 0.3
        assert end - 0.3 <= seg.end_offset_s <= end + p.tail_ms / 1000 + 0.1
        assert seg.duration_s == pytest.approx(seg.end_offset_s - seg.start_offset_s)
        assert not seg.forced_split
    assert [s.seq for s in segs] == [0, 1, 2]
    assert {(s.room_id, s.speaker_id, s.stream_id) for s in segs} == {
        ("room-1", "alice", "stream-1")}


def test_pcm_is_the_audio_at_the_offsets() -> None:
    audio, _ = layout()
    for seg in run(audio):
        a, b = round(seg.start_offset_s * SAMPLE_RATE), round(seg.end_offset_s * SAMPLE_RATE)
        assert seg.pcm == audio[a:b].tobytes()


def test_wall_time_and_latency_anchor() -> None:
    audio, _ = layout()
    p = VadParams()
    frame_s = 0.5
    fs = frames(audio, frame_s, wall0=1_000.0, mono0=50.0)
    seg = SpeechSegmenter("r", "s", "x", p)
    segs = [s for f in fs for s in seg.push(f)]
    assert segs
    for s in segs:
        assert s.start_time == pytest.approx(1_000.0 + s.start_offset_s)
        assert s.end_time == pytest.approx(1_000.0 + s.end_offset_s)
        # Closed by silence: the end is the last voiced frame plus the tail, and the anchor is
        # the arrival of the PcmFrame that held the last voiced sample.
        last_voiced_sample = round((s.end_offset_s - p.tail_ms / 1000) * SAMPLE_RATE) - 1
        assert s.end_monotonic == 50.0 + last_voiced_sample // round(frame_s * SAMPLE_RATE)


@pytest.mark.parametrize("frame_s", [0.01, 0.0137, 0.03, 0.5, 3.0])
def test_same_segments_whatever_the_frame_size(frame_s: float) -> None:
    audio, _ = layout()
    ref = run(audio, frame_s=0.02)
    got = run(audio, frame_s=frame_s)
    assert [(s.segment_id, s.start_offset_s, s.end_offset_s) for s in got] == [
        (s.segment_id, s.start_offset_s, s.end_offset_s) for s in ref]


def test_ids_are_deterministic_and_content_derived() -> None:
    audio, _ = layout()
    a, b = run(audio), run(audio)
    assert [s.segment_id for s in a] == [s.segment_id for s in b]
    assert len({s.segment_id for s in a}) == len(a)
    for s in a:
        assert s.segment_id == SpeechSegment.make_id("room-1", "alice", s.start_offset_s, s.pcm)


def test_short_voiced_runs_are_dropped() -> None:
    # 100 ms of speech: webrtcvad's own smoothing stretches it to ~200 ms of voiced frames.
    burst = speech(LONG)[SAMPLE_RATE * 2:SAMPLE_RATE * 2 + round(0.1 * SAMPLE_RATE)]
    audio = np.concatenate([gap(1.0), burst, gap(1.0, 1)])
    assert run(audio, VadParams(min_speech_ms=250)) == []
    kept = run(audio, VadParams(min_speech_ms=100))
    assert len(kept) == 1 and 0.6 <= kept[0].start_offset_s <= 1.1


def test_silence_and_noise_give_nothing() -> None:
    assert run(np.zeros(SAMPLE_RATE * 3, dtype=np.int16)) == []
    assert run(gap(3.0)) == []


def test_forced_split_at_max_length_starts_the_next_segment_at_once() -> None:
    audio = np.concatenate([gap(0.5), speech(LONG), gap(1.0, 1)])
    segs = run(audio, VadParams(max_segment_s=3.0))
    assert [s.forced_split for s in segs] == [True, True, False]
    assert [s.duration_s for s in segs[:2]] == [3.0, 3.0]
    for a, b in zip(segs, segs[1:], strict=False):
        assert b.start_offset_s == a.end_offset_s  # contiguous: nothing lost at the cut
    assert segs[-1].end_offset_s == pytest.approx(0.5 + len(speech(LONG)) / SAMPLE_RATE,
                                                  abs=0.3)
    assert [s.seq for s in segs] == [0, 1, 2]


def test_the_end_of_a_split_utterance_is_kept_however_short() -> None:
    audio = np.concatenate([gap(0.5), speech(LONG), gap(1.0, 1)])
    (whole,) = run(audio)
    last_voiced_end = whole.end_offset_s - VadParams().tail_ms / 1000
    # Cut 120 ms before the last voiced frame ends: that remainder alone is under min_speech_ms.
    cut = round((last_voiced_end - 0.12 - whole.start_offset_s) / 0.03) * 0.03
    segs = run(audio, VadParams(max_segment_s=cut))
    assert [s.forced_split for s in segs] == [True, False]
    assert segs[1].start_offset_s == segs[0].end_offset_s
    assert segs[1].end_offset_s == whole.end_offset_s
    assert b"".join(s.pcm for s in segs) == whole.pcm


def test_flush_closes_speech_cut_off_at_end_of_stream() -> None:
    audio = np.concatenate([gap(0.5), speech(LONG)[:SAMPLE_RATE * 2]])
    seg = SpeechSegmenter("r", "s", "x")
    assert [s for f in frames(audio) for s in seg.push(f)] == []
    assert seg.active
    out = seg.flush()
    assert len(out) == 1 and out[0].end_offset_s == pytest.approx(2.5, abs=0.03)
    assert not seg.active and seg.flush() == []


def test_discontinuity_closes_the_open_segment() -> None:
    clip = speech(LONG)[:SAMPLE_RATE * 2]
    seg = SpeechSegmenter("r", "s", "x")
    before = [s for f in frames(np.concatenate([gap(0.5), clip])) for s in seg.push(f)]
    # The source restarts 60 s later on its timeline: what was open cannot span the jump.
    jumped = PcmFrame(gap(0.5, 3).tobytes(), 62.5, 2_000.0, 99.0)
    closed = seg.push(jumped)
    assert before == [] and len(closed) == 1 and closed[0].end_offset_s <= 2.5


def test_odd_byte_count_is_rejected() -> None:
    seg = SpeechSegmenter("r", "s", "x")
    with pytest.raises(ValueError, match="odd"):
        seg.push(PcmFrame(b"\x00" * 321, 0.0, 0.0, 0.0))
    assert seg.push(PcmFrame(b"", 0.0, 0.0, 0.0)) == []


@pytest.mark.parametrize("bad", [{"frame_ms": 25}, {"aggressiveness": 4}, {"start_ratio": 0},
                                 {"hangover_ms": 10}, {"pre_roll_ms": -1}])
def test_params_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VadParams(**bad)  # type: ignore[arg-type]
