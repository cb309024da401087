"""Parameters of the ASR stage (filled by ``roomwarden.settings``; re-exported by
``asr.recognizer``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_INVENTED_PHRASES", "AsrParams"]

DEFAULT_INVENTED_PHRASES: tuple[str, ...] = (
    # Whisper learned these from subtitle files of videos, and emits them on silence, noise,
    # music and at the end of audio. None was said; a (sub-)segment consisting only of them is
    # rejected. Matching ignores case, punctuation and spacing, so "Thanks for watching!" and
    # "thanks for watching" are the same phrase.
    "thanks for watching",
    "thank you for watching",
    "thanks for watching and see you next time",
    "thank you so much for watching",
    "thank you for listening",
    "please subscribe",
    "please subscribe to my channel",
    "subscribe to my channel",
    "like and subscribe",
    "please like and subscribe",
    "don't forget to like and subscribe",
    "see you in the next video",
    "i'll see you in the next video",
    "see you next time",
    "subtitles by",
    "subtitles by the amara.org community",
    "amara.org",
    "captions by",
    "transcribed by",
    "transcription by castingwords",
    "the end",
    # The commonest outputs of tiny/base on near-silence. Rejecting a real "thank you" or "bye"
    # costs nothing for moderation; a fake one on every noisy segment costs review time.
    "you",
    "thank you",
    "thank you very much",
    "bye",
    # Chinese subtitle credits. The third names a political media channel: on a Chinese room it
    # would be an invented political statement put in a speaker's mouth.
    "字幕由amara.org社区提供",
    "字幕by索兰娅",
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "明镜与点点栏目",
    "优优独播剧场——yoyo television series exclusive",
    "продолжение следует",
)
"""Known Whisper hallucinations (lists from faster-whisper/whisper issues and the 2024 "Careless
Whisper" study). Extend per deployment through settings."""


@dataclass(frozen=True, slots=True)
class AsrParams:
    """How speech is recognised and when its text is trusted.

    Attributes:
        model: a registry name (``tiny.en``, bundled and pinned by sha256) or a CTranslate2
            Whisper model directory.
        model_sha256: expected sha256 of ``model.bin`` for a model directory (optional pin;
            registered names carry their own).
        compute_type: CTranslate2 compute type. ``int8`` is ~2x faster than float32 on CPU at
            nearly the same WER.
        cpu_threads: intra-op threads for one decode (0 = CTranslate2's default).
        beam_size: 1 = greedy. A beam buys little on short VAD utterances and costs latency.
        language: ISO 639-1 code to decode in; ``None`` detects it per segment (multilingual
            models only; English-only models always decode ``en``).
        temperatures: decoding temperatures tried in turn when a decode fails Whisper's quality
            checks. Default: greedy only -- sampled fallbacks make the text irreproducible (the
            same segment would not always give the same transcript) and cost up to one extra
            decode each; the guards below classify a failed decode instead of retrying it.
        no_speech_threshold: a sub-segment whose no-speech probability is above this AND whose
            ``avg_logprob`` is below ``log_prob_threshold`` is dropped (Whisper's own rule,
            Whisper's default 0.6); above it alone, the transcript is at most ``low``
            (``high_no_speech_prob``). Measured with tiny.en (``bench.nonspeech``, ``--speech``):
            real speech (57 VAD segments of ``../shared/evaldata/en_speech`` and the sample
            room) peaks at 0.58 decoded alone (a "five five" already ``low``; the next is 0.32)
            and at 0.32 packed next to non-speech, while every non-speech decode that got past
            Whisper's rule as ``confident`` (a 1 kHz beep written "F***!", packed with the beeps
            before it) had 0.70-0.75.
        log_prob_threshold: see ``no_speech_threshold``; a kept sub-segment below it makes the
            transcript ``low``.
        compression_ratio_threshold: gzip compression ratio of a sub-segment's text above which
            it is a repetition loop; makes the transcript ``low``.
        low_confidence_below: mean word probability under which the transcript is ``low``
            (review only, never automatic action).
        guards: apply the hallucination guards (drop no-speech sub-segments, reject invented
            phrases, flag repetition). Off only to measure what the guards buy.
        invented_phrases: text that Whisper invents; a sub-segment consisting only of these is
            dropped. See :data:`DEFAULT_INVENTED_PHRASES`.
        room_languages: per-room language hints, ``((room_id, code), ...)``; a room not listed
            uses ``language``. A hinted room's segments can be packed together; segments whose
            language is detected (``None``) are decoded one at a time, since Whisper detects one
            language per window.
        pack_window_s: cross-speaker packing (:mod:`asr.packing`): segments waiting for the
            decoder are laid end to end, up to this many seconds of audio, and decoded as one
            Whisper window. 0 decodes every segment alone.
        pack_gap_s: silence between packed segments.
        pack_max_windows: packed windows decoded together in one CTranslate2 batch (the decoder
            steps of all of them at once: ~1.5x more audio per CPU second on real speech at 16
            speakers). More windows per batch = more throughput, but the first segment waits
            for the whole batch.
    """

    model: str = "tiny.en"
    model_sha256: str | None = None
    compute_type: str = "int8"
    cpu_threads: int = 2
    beam_size: int = 1
    language: str | None = "en"
    temperatures: tuple[float, ...] = (0.0,)
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    low_confidence_below: float = 0.5
    guards: bool = True
    invented_phrases: tuple[str, ...] = DEFAULT_INVENTED_PHRASES
    room_languages: tuple[tuple[str, str], ...] = ()
    pack_window_s: float = 28.0
    pack_gap_s: float = 0.6
    pack_max_windows: int = 4

    def language_for(self, room_id: str) -> str | None:
        """The language to decode ``room_id`` in (``None``: detect per segment)."""
        for room, code in self.room_languages:
            if room == room_id:
                return code
        return self.language

    def __post_init__(self) -> None:
        # Fail at startup with the field's name, not deep inside CTranslate2 on the first segment.
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0, got {self.cpu_threads}")
        if not self.temperatures or any(not 0.0 <= t <= 1.0 for t in self.temperatures):
            raise ValueError(f"temperatures must be non-empty, each in [0, 1]: {self.temperatures}")
        if not 0.0 <= self.no_speech_threshold <= 1.0:
            raise ValueError(f"no_speech_threshold must be in [0, 1]: {self.no_speech_threshold}")
        if not 0.0 <= self.low_confidence_below <= 1.0:
            raise ValueError(f"low_confidence_below must be in [0, 1]: {self.low_confidence_below}")
        if not 0.0 <= self.pack_window_s <= 30.0:
            raise ValueError(f"pack_window_s must be in [0, 30] (Whisper's window): "
                             f"{self.pack_window_s}")
        if self.pack_max_windows < 1:
            raise ValueError(f"pack_max_windows must be >= 1: {self.pack_max_windows}")
        if not 0.2 <= self.pack_gap_s <= 5.0:
            raise ValueError(f"pack_gap_s must be in [0.2, 5] seconds: {self.pack_gap_s}")
