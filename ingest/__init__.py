"""Ingest stage: WebRTC/file audio in, per-speaker speech segments out.

Owns :class:`ingest.frames.SpeechSegment`. Imports nothing from the later stages.

Only the light pieces are re-exported here, so that later stages importing the event types do not
pay for aiortc/aiohttp/PyAV (~0.5 s): import the sources from their modules --
:mod:`ingest.files` (``read_pcm_file``, ``file_segments``), :mod:`ingest.track` (``read_pcm``),
:mod:`ingest.whip` (``WhipEndpoint``), :mod:`ingest.whip_client` (``publish_file``) and
:mod:`ingest.ice` (``restrict_host_addresses``).
"""

from ingest.errors import IngestError, WhipError
from ingest.frames import SAMPLE_RATE, PcmFrame, SpeechSegment
from ingest.vad import SpeechSegmenter, VadParams

__all__ = [
    "SAMPLE_RATE",
    "IngestError",
    "PcmFrame",
    "SpeechSegment",
    "SpeechSegmenter",
    "VadParams",
    "WhipError",
]
