"""ASR stage: speech segments in, transcripts out (faster-whisper).

Owns :class:`asr.frames.Transcript`. May import ``ingest`` types, never later stages.
Heavy pieces (faster-whisper, the model) load only when a ``WhisperRecognizer`` is built.
"""

from asr.frames import Transcript, Word

__all__ = ["Transcript", "Word"]
