"""Files as a source: decoding, resampling, segmenting, and the errors a user sees."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from ingest.errors import IngestError
from ingest.files import file_segments, read_pcm_file
from ingest.frames import SAMPLE_RATE
from ingest.vad import SpeechSegmenter, VadParams

EVAL = Path(__file__).resolve().parents[3] / "shared" / "evaldata" / "en_speech"
CARDS = EVAL / "pocketsphinx" / "cards"
JFK = EVAL / "faster-whisper" / "jfk.flac"  # 44.1 kHz stereo FLAC, 11.0 s


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"evaldata not found at {path} (tests read ../shared/evaldata)")
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def speech_file(tmp_path: Path) -> tuple[Path, int]:
    """Three cards clips with 1 s gaps, written as a 48 kHz stereo WAV (decode + resample)."""
    parts = [np.zeros(SAMPLE_RATE, dtype=np.int16)]
    for name in ("001.wav", "003.wav", "004.wav"):
        with wave.open(str(need(CARDS / name))) as w:
            parts += [np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16),
                      np.zeros(SAMPLE_RATE, dtype=np.int16)]
    mono16 = np.concatenate(parts)
    mono48 = np.repeat(mono16, 3)  # crude 3x upsampling is fine for VAD
    return write_wav(tmp_path / "room.wav", np.repeat(mono48, 2), 48_000, 2), len(mono16)


def test_reads_flac_stereo_44k_as_16k_mono_chunks() -> None:
    frames = list(read_pcm_file(need(JFK), chunk_s=0.5, base_time=1_000.0))
    assert all(len(f.pcm) == SAMPLE_RATE for f in frames[:-1])  # 0.5 s of s16 = 16000 bytes
    total = sum(f.duration_s for f in frames)
    assert total == pytest.approx(11.0, abs=0.01)
    pos = 0.0
    for f in frames:
        assert f.offset_s == pytest.approx(pos) and f.wall_time == pytest.approx(1_000.0 + pos)
        pos += f.duration_s


def test_resampled_length_is_exact(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", np.zeros(48_000 * 2 * 3, dtype=np.int16), 48_000, 2)
    frames = list(read_pcm_file(path, chunk_s=0.25))
    assert sum(len(f.pcm) // 2 for f in frames) == pytest.approx(3 * SAMPLE_RATE, abs=2)


async def test_file_segments_match_the_segmenter(tmp_path: Path) -> None:
    path, _ = speech_file(tmp_path)
    segs = [s async for s in file_segments(path, "room-1", "bob", VadParams())]
    assert len(segs) == 3
    assert all(s.stream_id == "file:room.wav" and s.speaker_id == "bob" for s in segs)
    seg = SpeechSegmenter("room-1", "bob", "file:room.wav", VadParams())
    direct = [s for f in read_pcm_file(path) for s in seg.push(f)] + seg.flush()
    assert [s.segment_id for s in segs] == [s.segment_id for s in direct]
    again = [s async for s in file_segments(path, "room-1", "bob", stream_id="other")]
    assert [s.segment_id for s in again] == [s.segment_id for s in segs]  # ids: content only
    assert {s.stream_id for s in again} == {"other"}


async def test_file_segments_lets_other_tasks_run(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", np.zeros(SAMPLE_RATE * 60, dtype=np.int16),
                     SAMPLE_RATE)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    assert [s async for s in file_segments(path, "r", "s")] == []
    task.cancel()
    assert ticks > 5


@pytest.mark.parametrize("content", [None, b"", b"this is not audio at all\n" * 50])
def test_unreadable_files_raise_ingest_error_naming_the_file(tmp_path: Path,
                                                             content: bytes | None) -> None:
    path = tmp_path / "speech.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(IngestError, match="speech.wav"):
        read_pcm_file(path)


async def test_file_segments_raises_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="No such file"):
        [s async for s in file_segments(tmp_path / "missing.flac", "r", "s")]
