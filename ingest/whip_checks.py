"""Checks on WHIP requests before any WebRTC work: path ids, bearer token, the SDP offer.

Each failed check raises :class:`Rejected`, which carries the HTTP status, a short stable
``kind`` (safe as a metric label) and a plain-text reason for the publisher.
"""

from __future__ import annotations

import hmac
import re

from aiortc import sdp as aiortc_sdp

SDP = "application/sdp"
_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")


class Rejected(Exception):
    """A WHIP request refused with ``status``; ``headers`` go into the response."""

    def __init__(self, status: int, kind: str, reason: str, **headers: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason, self.headers = status, kind, reason, headers


def check_id(what: str, value: str) -> None:
    """Room and speaker ids: 1-128 URL-unreserved characters (they go into logs and keys)."""
    if not _ID.fullmatch(value):
        raise Rejected(400, "bad_id", f"invalid {what} id {value[:140]!r}: use 1-128 characters "
                       "of A-Z a-z 0-9 . _ ~ -")


def check_bearer(header: str | None, token: str | None) -> None:
    """``Authorization: Bearer <token>`` must match ``token`` (no check when it is None)."""
    if token is None:
        return
    scheme, _, given = (header or "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise Rejected(401, "unauthorized", "missing bearer token",
                       **{"WWW-Authenticate": 'Bearer realm="roomwarden"'})
    # Constant-time comparison: response timing must not reveal how much of a guess matched.
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Rejected(401, "unauthorized", "invalid bearer token", **{
            "WWW-Authenticate": 'Bearer realm="roomwarden", error="invalid_token"'})


def parse_offer(body: bytes) -> tuple[aiortc_sdp.SessionDescription, str]:
    """Check the offer is SDP with an Opus audio m-line that sends; return it parsed and as text.

    Only the cheap, explainable checks live here; aiortc's ``setRemoteDescription`` still
    validates ICE/DTLS parameters afterwards.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, "invalid_sdp", f"offer is not a valid SDP: not UTF-8 ({exc})") from exc
    if not text.lstrip().startswith("v=0"):
        raise Rejected(400, "invalid_sdp", "offer is not a valid SDP: it must start with v=0")
    try:
        offer = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # the parser raises whatever the bad line provokes
        raise Rejected(400, "invalid_sdp", f"offer is not a valid SDP: {exc!r}") from exc
    audio = next((m for m in offer.media if m.kind == "audio"), None)
    if audio is None:
        kinds = ", ".join(m.kind for m in offer.media) or "none"
        raise Rejected(422, "no_audio", f"offer has no audio m-line (m-lines: {kinds}); "
                       "RoomWarden receives audio")
    if audio.direction not in (None, "sendonly", "sendrecv"):  # absent means sendrecv
        raise Rejected(422, "no_audio", f"offer's audio is {audio.direction}: a WHIP publisher "
                       "must send audio")
    names = [c.mimeType.split("/")[-1] for c in audio.rtp.codecs]
    if "opus" not in (n.lower() for n in names):
        offered = ", ".join(dict.fromkeys(names)) or "no codecs"
        raise Rejected(422, "unsupported_codec",
                       f"unsupported codec: offer has {offered}, RoomWarden accepts opus")
    return offer, text
