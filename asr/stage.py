"""The ASR stage as a stream transformer: speech segments in, transcripts out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from asr.frames import Transcript
from asr.recognizer import SpeechRecognizer
from ingest.frames import SpeechSegment

__all__ = ["transcribe_stream"]


async def transcribe_stream(
    segments: AsyncIterator[SpeechSegment], recognizer: SpeechRecognizer
) -> AsyncIterator[Transcript]:
    """Transcribe segments one at a time, in arrival order.

    Sequential on purpose: one recognizer decodes one segment at a time anyway, and keeping
    order means a speaker's transcripts come out in the order they spoke. (Batching segments of
    several speakers into one decode is a later step.)

    Args:
        segments: speech segments, e.g. from ``ingest.files.file_segments`` or a queue reader.
        recognizer: any :class:`~asr.recognizer.SpeechRecognizer`.

    Yields:
        One transcript per segment, rejected ones included (they are part of the audit record;
        consumers filter on ``confidence_class``).

    Raises:
        Whatever the recognizer raises (e.g. ``ValueError`` for malformed pcm); the stream ends
        there. Callers that must survive a bad segment wrap ``recognizer.transcribe`` per item.
    """
    async for segment in segments:
        yield await recognizer.transcribe(segment)
