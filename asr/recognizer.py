"""Speech recognizers: the ``SpeechRecognizer`` seam and its faster-whisper implementation."""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np
import structlog

from asr.frames import Transcript
from asr.guards import Judgement, judge
from asr.models import ModelSpec, resolve_model, verify_model
from asr.params import DEFAULT_INVENTED_PHRASES, AsrParams
from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, SpeechSegment

__all__ = [
    "DEFAULT_INVENTED_PHRASES",
    "AsrParams",
    "SpeechRecognizer",
    "WhisperRecognizer",
    "pcm_to_float32",
    "transcript_id",
]

log = structlog.get_logger(__name__)


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Anything that turns one speech segment into one transcript."""

    async def transcribe(self, segment: SpeechSegment) -> Transcript:
        """Recognise ``segment``; must not block the event loop."""
        ...


def transcript_id(segment_id: str, model_id: str) -> str:
    """Deterministic transcript id: the same speech through the same model gives the same id,
    so a replay is deduplicated downstream while a model upgrade yields a new transcript."""
    h = hashlib.blake2b(digest_size=16)
    h.update(segment_id.encode())
    h.update(b"\0")
    h.update(model_id.encode())
    return h.hexdigest()


def pcm_to_float32(pcm: bytes) -> np.ndarray:
    """16-bit little-endian PCM -> float32 in [-1, 1), the form Whisper's features expect."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _check_pcm(segment: SpeechSegment) -> None:
    if not segment.pcm:
        raise ValueError(f"segment {segment.segment_id} has no audio (empty pcm)")
    if len(segment.pcm) % BYTES_PER_SAMPLE:
        raise ValueError(
            f"segment {segment.segment_id} has {len(segment.pcm)} bytes of pcm, an odd number: "
            f"expected 16 kHz mono s16le ({BYTES_PER_SAMPLE} bytes per sample)"
        )


class WhisperRecognizer:
    """faster-whisper (CTranslate2) on CPU, guarded against invented text.

    Construction resolves the model, verifies its sha256 and loads it (about 1 s for tiny.en):
    build it at startup, or off the event loop (``await asyncio.to_thread(WhisperRecognizer,
    params)``). Decoding runs in one dedicated worker thread: the event loop never decodes, and
    one model never decodes two segments at once (CTranslate2 would split the same cores between
    them and both would finish late). Callers queue; ``queued_seconds`` reports the wait.

    Args:
        params: model and decoding parameters, guard thresholds.
    """

    def __init__(self, params: AsrParams | None = None) -> None:
        from faster_whisper import WhisperModel  # deferred: importing it costs ~0.1-0.5 s

        self.params = params or AsrParams()
        started = time.perf_counter()
        self.spec: ModelSpec = resolve_model(self.params.model,
                                             expected_sha256=self.params.model_sha256)
        verify_model(self.spec)  # a tampered bundled model must never be loaded
        self._model: Any = WhisperModel(
            str(self.spec.path),
            device="cpu",
            compute_type=self.params.compute_type,
            cpu_threads=self.params.cpu_threads,
        )
        self.load_seconds = time.perf_counter() - started
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-whisper")
        self._closed = False
        log.info("asr_model_loaded", model_id=self.spec.model_id, path=str(self.spec.path),
                 compute_type=self.params.compute_type, cpu_threads=self.params.cpu_threads,
                 load_seconds=round(self.load_seconds, 3))

    @property
    def model(self) -> Any:
        """The loaded faster-whisper model (benchmarks compare decoding settings on it)."""
        return self._model

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    async def transcribe(self, segment: SpeechSegment) -> Transcript:
        """Transcribe one segment in the worker thread and judge the result.

        Raises:
            ValueError: the segment's pcm is empty or not whole 16-bit samples.
            RuntimeError: the recognizer was closed.
        """
        _check_pcm(segment)
        if self._closed:
            raise RuntimeError("WhisperRecognizer is closed")
        submitted = time.monotonic()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transcribe_sync, segment,
                                          submitted)

    def warmup(self) -> float:
        """Decode one second of silence so the first real segment does not pay for CTranslate2's
        lazy initialisation (~0.1-0.4 s on tiny.en here). Returns the seconds it took.

        Blocking, like construction, and meant for startup (``await asyncio.to_thread(
        recognizer.warmup)``). It runs on the worker thread, so it never overlaps a decode.
        """
        if self._closed:
            raise RuntimeError("WhisperRecognizer is closed")
        silence = np.zeros(SAMPLE_RATE, dtype=np.float32)

        def run() -> float:
            started = time.perf_counter()
            self._decode(silence)
            return time.perf_counter() - started

        seconds = self._executor.submit(run).result()
        log.info("asr_warmed_up", model_id=self.model_id, seconds=round(seconds, 3))
        return seconds

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker thread. Segments not yet started are cancelled; with ``wait`` the call
        blocks until the running decode ends (call it off the loop, or with ``wait=False``)."""
        self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)

    # -- worker thread ------------------------------------------------------------------------

    def _decode(self, audio: np.ndarray) -> tuple[list[Any], str]:
        # Our VAD already cut this speech out (vad_filter=False). Each segment is decoded on its
        # own (condition_on_previous_text=False) so an earlier mistake cannot seed a later one.
        # With a single temperature, Whisper's no-speech skip is applied by the guards instead of
        # inside faster-whisper, so the dropped text and its no_speech_prob stay visible. With a
        # fallback ladder faster-whisper needs the threshold itself, or silence would trigger
        # every sampled retry.
        params = self.params
        fallback = len(params.temperatures) > 1
        segments, info = self._model.transcribe(
            audio,
            language=params.language,
            beam_size=params.beam_size,
            temperature=list(params.temperatures),
            condition_on_previous_text=False,
            word_timestamps=True,
            without_timestamps=False,
            vad_filter=False,
            no_speech_threshold=params.no_speech_threshold if fallback else None,
            log_prob_threshold=params.log_prob_threshold,
            compression_ratio_threshold=params.compression_ratio_threshold,
        )
        # transcribe() is lazy: the decoding happens while the generator is consumed, which must
        # be here in the worker thread, never on the event loop.
        return list(segments), info.language

    def _transcribe_sync(self, segment: SpeechSegment, submitted: float) -> Transcript:
        started = time.monotonic()
        t0 = time.perf_counter()
        subsegments, language = self._decode(pcm_to_float32(segment.pcm))
        asr_seconds = time.perf_counter() - t0
        verdict: Judgement = judge(subsegments, self.params, offset_s=segment.start_offset_s,
                                   duration_s=segment.duration_s)
        if verdict.dropped_text or verdict.confidence_class != "confident":
            log.debug("asr_guarded", room_id=segment.room_id, speaker_id=segment.speaker_id,
                      segment_id=segment.segment_id, confidence_class=verdict.confidence_class,
                      reasons=verdict.guard_reasons, dropped_text=verdict.dropped_text)
        return Transcript(
            segment=segment,
            transcript_id=transcript_id(segment.segment_id, self.model_id),
            text=verdict.text,
            language=language,
            words=verdict.words,
            confidence=verdict.confidence,
            confidence_class=verdict.confidence_class,
            model_id=self.model_id,
            asr_seconds=asr_seconds,
            queued_seconds=started - submitted,
            no_speech_prob=verdict.no_speech_prob,
            avg_logprob=verdict.avg_logprob,
            compression_ratio=verdict.compression_ratio,
            guard_reasons=verdict.guard_reasons,
        )
