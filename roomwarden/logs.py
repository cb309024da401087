"""Structured logging: JSON lines in production, readable lines on a terminal, always stderr.

stdout is reserved for command output (``moderate --json`` prints only CloudEvents there).
"""

from __future__ import annotations

import logging
import sys

import structlog


class _StderrLogger:
    """Writes to whatever ``sys.stderr`` is *now*: tests and CLI runners swap it, and a logger
    that kept the old stream would write to a closed file."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog (and route stdlib logging, e.g. aiokafka's, through stderr)."""
    lvl = getattr(logging, level.upper())
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=lambda *_: _StderrLogger(),
        # Not cached: module-level loggers then follow a later structlog.configure (tests'
        # capture_logs after a command configured logging). We log per utterance, not per
        # frame, so the few microseconds per call do not show.
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(stream=sys.stderr, level=max(lvl, logging.WARNING), force=True)
    # aioice/aiortc log every ICE check at INFO; keep them quiet unless debugging.
    for noisy in ("aioice", "aiortc", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if lvl <= logging.DEBUG else logging.ERROR)
