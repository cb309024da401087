"""Ingest stage: WebRTC/file audio in, per-speaker speech segments out.

Owns :class:`ingest.frames.SpeechSegment`. Imports nothing from the later stages.
"""

from ingest.frames import PcmFrame, SpeechSegment

__all__ = ["PcmFrame", "SpeechSegment"]
