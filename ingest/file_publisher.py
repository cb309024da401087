"""The publishing half shared by RoomWarden's simulated speakers (WHIP and Janus VideoRoom):
an audio file as an aiortc track, and a peer connection whose fate is watched."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.contrib.media import MediaPlayer

from ingest.errors import IngestError


@dataclass(frozen=True, slots=True)
class FilePlayback:
    """A file's audio track on a new peer connection, with events for how it goes.

    Attributes:
        ended: the file played to its end (success).
        connected: ICE + DTLS are up.
        failed: the connection failed or was closed before the file ended.
    """

    track: MediaStreamTrack
    pc: RTCPeerConnection
    ended: asyncio.Event
    connected: asyncio.Event
    failed: asyncio.Event


def open_file_playback(path: str | os.PathLike[str],
                       ice_servers: Sequence[RTCIceServer] = ()) -> FilePlayback:
    """Open ``path`` (anything FFmpeg reads) for real-time playback on a new peer connection.

    Raises:
        IngestError: the file cannot be read or has no audio.
    """
    name = os.fspath(path)
    try:
        player = MediaPlayer(name)
    except (OSError, av.FFmpegError) as exc:
        raise IngestError(f"cannot read audio file {name}: {exc}") from exc
    track = player.audio
    if track is None:
        raise IngestError(f"cannot read audio file {name}: it has no audio stream")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
    ended, connected, failed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @track.on("ended")
    def on_ended() -> None:
        # MediaPlayer tracks stop themselves at end of file; closing the connection (e.g. the
        # server ended the session) stops them too, and that is no success.
        (failed if pc.signalingState == "closed" else ended).set()

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            connected.set()
        elif pc.connectionState in ("failed", "closed"):
            failed.set()

    return FilePlayback(track, pc, ended, connected, failed)
