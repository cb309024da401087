"""Speech recognizers: the ``SpeechRecognizer`` seam and its faster-whisper implementation."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import structlog

from asr.frames import Transcript
from asr.guards import Judgement, judge
from asr.models import ModelSpec, resolve_model, verify_model
from asr.packing import Pack, build_pack, implausible, join_packs, split_words, take_pack
from asr.params import DEFAULT_INVENTED_PHRASES, AsrParams
from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, SpeechSegment

__all__ = [
    "DEFAULT_INVENTED_PHRASES",
    "AsrParams",
    "SpeechRecognizer",
    "WhisperRecognizer",
    "float32_to_pcm",
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


def float32_to_pcm(audio: np.ndarray) -> bytes:
    """float samples (clipped to [-1, 1)) -> 16-bit little-endian PCM, the segments' form."""
    return (np.clip(audio, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


def _check_pcm(segment: SpeechSegment) -> None:
    if not segment.pcm:
        raise ValueError(f"segment {segment.segment_id} has no audio (empty pcm)")
    if len(segment.pcm) % BYTES_PER_SAMPLE:
        raise ValueError(
            f"segment {segment.segment_id} has {len(segment.pcm)} bytes of pcm, an odd number: "
            f"expected 16 kHz mono s16le ({BYTES_PER_SAMPLE} bytes per sample)"
        )


@dataclass(slots=True)
class _Request:
    """A segment waiting for the decoder, and the future its caller awaits."""

    segment: SpeechSegment
    language: str | None
    future: asyncio.Future[Transcript]
    submitted: float


class WhisperRecognizer:
    """faster-whisper (CTranslate2) on CPU, guarded against invented text, packing speakers.

    Construction resolves the model, verifies its sha256 and loads it (about 1 s for tiny.en):
    build it at startup, or off the event loop (``await asyncio.to_thread(WhisperRecognizer,
    params)``). Decoding runs in one dedicated worker thread: the event loop never decodes, and
    one model never decodes two windows at once (CTranslate2 would split the same cores between
    them and both would finish late).

    Segments that arrive while a decode runs wait; when the decoder frees up, the waiting ones
    (oldest first, same language) are packed into windows (:mod:`asr.packing`), and up to
    ``pack_max_windows`` windows are decoded as one CTranslate2 batch (faster-whisper's
    ``BatchedInferencePipeline``: the encoder gains nothing from batching on CPU, but one
    decoder step then serves every window). A lone
    segment is decoded alone, so at low load nothing waits for company: batches form only from
    what is already queued. ``queued_seconds`` reports the wait, ``batch_size`` the company.

    Args:
        params: model and decoding parameters, guard thresholds, packing.
    """

    def __init__(self, params: AsrParams | None = None) -> None:
        # deferred: importing faster_whisper costs ~0.1-0.5 s
        from faster_whisper import BatchedInferencePipeline, WhisperModel

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
        self._batched: Any = BatchedInferencePipeline(self._model)
        self.load_seconds = time.perf_counter() - started
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-whisper")
        self._closed = False
        self._pending: list[_Request] = []
        self._pump: asyncio.Task[None] | None = None
        log.info("asr_model_loaded", model_id=self.spec.model_id, path=str(self.spec.path),
                 compute_type=self.params.compute_type, cpu_threads=self.params.cpu_threads,
                 multilingual=self.multilingual, load_seconds=round(self.load_seconds, 3))

    @property
    def model(self) -> Any:
        """The loaded faster-whisper model (benchmarks compare decoding settings on it)."""
        return self._model

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def language_for(self, segment: SpeechSegment) -> str | None:
        """The language ``segment`` is decoded in: English-only models always ``en``; otherwise
        the room's hint, the default, or ``None`` (detect)."""
        if not self.multilingual:
            return "en"
        return self.params.language_for(segment.room_id)

    async def transcribe(self, segment: SpeechSegment) -> Transcript:
        """Transcribe one segment (packed with whatever else is waiting) and judge the result.

        Raises:
            ValueError: the segment's pcm is empty or not whole 16-bit samples.
            RuntimeError: the recognizer was closed.
        """
        _check_pcm(segment)
        if self._closed:
            raise RuntimeError("WhisperRecognizer is closed")
        loop = asyncio.get_running_loop()
        request = _Request(segment, self.language_for(segment), loop.create_future(),
                           time.monotonic())
        self._pending.append(request)
        if self._pump is None or self._pump.done() or self._pump.get_loop() is not loop:
            self._pump = loop.create_task(self._run_pump(), name="asr-pump")
        return await request.future

    async def transcribe_many(self, segments: Sequence[SpeechSegment]) -> list[Transcript]:
        """Transcribe several segments at once (they are packed together), in order."""
        return list(await asyncio.gather(*(self.transcribe(s) for s in segments)))

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
            self._decode(silence, "en" if not self.multilingual else self.params.language)
            return time.perf_counter() - started

        seconds = self._executor.submit(run).result()
        log.info("asr_warmed_up", model_id=self.model_id, seconds=round(seconds, 3))
        return seconds

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker thread. Segments not yet started are cancelled; with ``wait`` the call
        blocks until the running decode ends (call it off the loop, or with ``wait=False``)."""
        self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)

    # -- event loop: hand batches to the worker thread ------------------------------------------

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Callers that gave up (cancelled), or whose loop is gone, are not decoded.
            self._pending = [r for r in self._pending
                             if not r.future.done() and r.future.get_loop() is loop]
            if not self._pending:
                return
            windows = self._next_batch()
            batch = [r for window in windows for r in window]
            try:
                transcripts = await loop.run_in_executor(
                    self._executor, self._transcribe_batch_sync,
                    [[(r.segment, r.language, r.submitted) for r in w] for w in windows])
            except asyncio.CancelledError:
                for r in batch:
                    r.future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            for r, transcript in zip(batch, transcripts, strict=True):
                if not r.future.done():
                    r.future.set_result(transcript)

    def _next_batch(self) -> list[list[_Request]]:
        """The next decode: windows of waiting requests (oldest first, one language)."""
        head = self._pending[0]
        if self.params.pack_window_s <= 0 or head.language is None:
            windows = [[head]]  # detection is per window: a detected segment decodes alone
        else:
            rest = [r for r in self._pending if r.language == head.language]
            windows = []
            while rest and len(windows) < self.params.pack_max_windows:
                n = take_pack([r.segment for r in rest], window_s=self.params.pack_window_s,
                              gap_s=self.params.pack_gap_s)
                windows.append(rest[:n])
                rest = rest[n:]
        taken = {id(r) for window in windows for r in window}
        self._pending = [r for r in self._pending if id(r) not in taken]
        return windows

    # -- worker thread ------------------------------------------------------------------------

    def _decode(self, audio: np.ndarray, language: str | None) -> tuple[list[Any], str]:
        # Our VAD already cut this speech out (vad_filter=False). Each window is decoded on its
        # own (condition_on_previous_text=False) so an earlier mistake cannot seed a later one.
        # With a single temperature, Whisper's no-speech skip is applied by the guards instead of
        # inside faster-whisper, so the dropped text and its no_speech_prob stay visible. With a
        # fallback ladder faster-whisper needs the threshold itself, or silence would trigger
        # every sampled retry.
        params = self.params
        fallback = len(params.temperatures) > 1
        segments, info = self._model.transcribe(
            audio,
            language=language,
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

    def _decode_windows(self, audio: np.ndarray, clips: Sequence[dict[str, float]],
                        language: str | None) -> tuple[list[Any], str]:
        # Several windows in one CTranslate2 batch. Batched decoding has no temperature ladder
        # (the first temperature is used), which is also RoomWarden's default.
        params = self.params
        segments, info = self._batched.transcribe(
            audio,
            language=language,
            beam_size=params.beam_size,
            temperature=params.temperatures[0],
            word_timestamps=True,
            without_timestamps=False,
            vad_filter=False,
            clip_timestamps=list(clips),
            batch_size=len(clips),
            log_prob_threshold=params.log_prob_threshold,
            compression_ratio_threshold=params.compression_ratio_threshold,
        )
        return list(segments), info.language

    def _transcribe_batch_sync(
        self, windows: list[list[tuple[SpeechSegment, str | None, float]]]
    ) -> list[Transcript]:
        started = time.monotonic()
        t0 = time.perf_counter()
        items = [item for window in windows for item in window]
        segments = [segment for segment, _, _ in items]
        language = items[0][1]
        audio = [pcm_to_float32(s.pcm) for s in segments]
        if len(items) == 1:
            subsegments, detected = self._decode(audio[0], language)
            judgements = [judge(subsegments, self.params, offset_s=segments[0].start_offset_s,
                                duration_s=segments[0].duration_s)]
        else:
            judgements, detected = self._judge_packed(windows, audio, language)
        elapsed = time.perf_counter() - t0
        speech = sum(s.duration_s for s in segments) or 1.0
        sizes = [len(window) for window in windows for _ in window]
        return [
            self._transcript(segment, verdict, detected,
                             asr_seconds=elapsed * segment.duration_s / speech,
                             queued_seconds=started - submitted, batch_size=size)
            for (segment, _, submitted), verdict, size in zip(items, judgements, sizes,
                                                               strict=True)
        ]

    def _judge_packed(self, windows: list[list[tuple[SpeechSegment, str | None, float]]],
                      audio: list[np.ndarray],
                      language: str | None) -> tuple[list[Judgement], str]:
        segments = [segment for window in windows for segment, _, _ in window]
        audio_of = {id(s): a for s, a in zip(segments, audio, strict=True)}
        packs = [self._pack([s for s, _, _ in window], audio_of) for window in windows]
        verdicts, suspects, detected = self._decode_packs(packs, language)
        if len(suspects) > 1:
            # Second pass: the doubtful ones packed again, each window decoded on its own
            # (sequential decoding re-seeks after a window that ends early; a batch does not).
            doubtful = [segment for segment, _ in suspects]
            suspects = []
            while doubtful:
                n = take_pack(doubtful, window_s=self.params.pack_window_s,
                              gap_s=self.params.pack_gap_s)
                again, still, _ = self._decode_packs([self._pack(doubtful[:n], audio_of)],
                                                     language)
                verdicts.update(again)
                suspects += still
                doubtful = doubtful[n:]
        for segment, why in suspects:  # last resort: alone, as if never packed
            alone, _ = self._decode(audio_of[id(segment)], language)
            verdict = judge(alone, self.params, offset_s=segment.start_offset_s,
                            duration_s=segment.duration_s)
            verdicts[id(segment)] = dataclasses.replace(
                verdict, guard_reasons=verdict.guard_reasons + (f"redecoded_{why}",))
        return [verdicts[id(s)] for s in segments], detected

    def _pack(self, segments: list[SpeechSegment], audio_of: dict[int, np.ndarray]) -> Pack:
        return build_pack(segments, [audio_of[id(s)] for s in segments],
                          gap_s=self.params.pack_gap_s)

    def _decode_packs(
        self, packs: list[Pack], language: str | None
    ) -> tuple[dict[int, Judgement], list[tuple[SpeechSegment, str]], str]:
        """Decode packed windows (one batch when several) and judge each segment's share.

        Returns verdicts by ``id(segment)`` for the shares that can be trusted, and the
        segments that cannot, with why.
        """
        if len(packs) == 1:
            subsegments, detected = self._decode(packs[0].audio, language)
            placements = packs[0].placements
        else:
            joined = join_packs(packs, gap_s=self.params.pack_gap_s)
            subsegments, detected = self._decode_windows(joined.audio, joined.clips, language)
            placements = joined.placements
        pieces, ambiguous = split_words(subsegments, placements)
        verdicts: dict[int, Judgement] = {}
        suspects: list[tuple[SpeechSegment, str]] = []
        for i, placement in enumerate(placements):
            segment = placement.segment
            # A word reaching into two segments or timed into the silence between them, a
            # share that cannot be one person's utterance, or no words at all (Whisper may
            # stop before a window's end): not trusted as this speaker's words.
            if i in ambiguous:
                why: str | None = "pack_boundary"
            elif not any(piece.words for piece in pieces[i]):
                why = "no_words"
            else:
                why = implausible(pieces[i], segment.duration_s, language or detected)
            if why is None:
                verdicts[id(segment)] = judge(pieces[i], self.params,
                                              offset_s=segment.start_offset_s,
                                              duration_s=segment.duration_s)
            else:
                suspects.append((segment, why))
        return verdicts, suspects, detected

    def _transcript(self, segment: SpeechSegment, verdict: Judgement, language: str, *,
                    asr_seconds: float, queued_seconds: float, batch_size: int) -> Transcript:
        if verdict.dropped_text or verdict.confidence_class != "confident":
            log.debug("asr_guarded", room_id=segment.room_id, speaker_id=segment.speaker_id,
                      segment_id=segment.segment_id, confidence_class=verdict.confidence_class,
                      reasons=verdict.guard_reasons, dropped_text=verdict.dropped_text)
        if language == "zh":
            verdict = _simplified(verdict)
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
            queued_seconds=queued_seconds,
            no_speech_prob=verdict.no_speech_prob,
            avg_logprob=verdict.avg_logprob,
            compression_ratio=verdict.compression_ratio,
            guard_reasons=verdict.guard_reasons,
            batch_size=batch_size,
        )


def _simplified(verdict: Judgement) -> Judgement:
    """Chinese text in Simplified characters: Whisper writes either script, and policy rules,
    reviewers and exports should see one."""
    from asr.script import to_simplified  # deferred: loads OpenCC's dictionaries

    words = tuple(dataclasses.replace(w, text=to_simplified(w.text)) for w in verdict.words)
    return dataclasses.replace(verdict, text=to_simplified(verdict.text), words=words)
