"""ASR stage: speech segments in, transcripts out (faster-whisper).

Owns :class:`asr.frames.Transcript`. May import ``ingest`` types, never later stages.
"""

from asr.frames import Transcript, Word

__all__ = ["Transcript", "Word"]
