"""Policy stage: transcripts in, verdicts (alerts) out.

Owns :class:`policy.frames.Alert`. May import ``asr`` and ``ingest`` types, never ``alerts``.
"""

from policy.frames import Alert, MatchSpan

__all__ = ["Alert", "MatchSpan"]
