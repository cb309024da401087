"""Errors the ingest stage raises for problems a user or a peer can fix."""

from __future__ import annotations


class IngestError(Exception):
    """Audio could not be read: the message names the source (file, URL) and the reason."""


class SignalingError(IngestError):
    """An HTTP signalling peer (WHIP, WHEP) refused or broke a session.

    Attributes:
        status: the HTTP status the server answered with (0 when no HTTP answer was received).
        reason: the server's plain-text reason, or a description of what went wrong.
    """

    action = "signalling"

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{self.action} failed ({status}): {reason}" if status
                         else f"{self.action} failed: {reason}")
        self.status = status
        self.reason = reason


class WhipError(SignalingError):
    """A WHIP server refused or broke a publish."""

    action = "WHIP publish"


class WhepError(SignalingError):
    """A WHEP server refused or broke a subscription."""

    action = "WHEP subscription"
