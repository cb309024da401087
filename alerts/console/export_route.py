"""``GET /api/export``: the auditor's export over HTTP -- the same bundle as ``roomwarden export``.

Query: ``room`` (required), ``from`` / ``to`` (RFC 3339 or Unix seconds; optional), ``format``
(``jsonl`` default, ``csv``, ``vtt``). Auditors only (an operator gets 403, no login 401). The
bundle is built in a private temporary directory off the event loop by the audit store's export
function, streamed as an attachment, and deleted afterwards. Every export is logged with the
auditor's name, the room and the window: who took which records out is itself audit material.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

if TYPE_CHECKING:
    from alerts.console.app import Console

__all__ = ["EXPORT_FORMATS", "ExportRequest", "Exporter", "audit_exporter", "export_handler",
           "parse_when"]

log = structlog.get_logger(__name__)
EXPORT_FORMATS = ("jsonl", "csv", "vtt")
_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What the auditor asked for (times as Unix seconds, None = unbounded)."""

    room_id: str
    since: float | None
    until: float | None
    format: str


Exporter = Callable[[ExportRequest, Path], Path]
"""Writes the bundle of the request into the given empty directory and returns its path: a
file (``.tar``/``.zip``/...) is sent as is, a directory is sent as a ``.tar`` of it. Runs in a
worker thread. Raises ``LookupError`` for an unknown room, ``ValueError`` for a bad request."""


def audit_exporter(store: Any) -> Exporter:
    """The exporter of ``roomwarden export``: :func:`alerts.audit.export.export_room` on
    ``store`` (an :class:`alerts.audit.AuditStore`), written as one ``.tar.gz``."""

    def export(wanted: ExportRequest, out: Path) -> Path:
        from alerts.audit.export import export_room

        if wanted.room_id not in store.rooms():
            raise LookupError(f"room {wanted.room_id!r} is not in the audit store")
        target = out / f"roomwarden-export-{_safe(wanted.room_id)}.tar.gz"
        export_room(store, wanted.room_id, target, since=wanted.since, until=wanted.until,
                    fmt=wanted.format)
        return target

    return export


def parse_when(value: str | None, name: str) -> float | None:
    """``from``/``to``: RFC 3339 (``2026-11-21T20:00:00Z``) or Unix seconds; empty = None.

    Raises:
        ValueError: naming the parameter and the accepted forms.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}={value!r} is neither RFC 3339 (2026-11-21T20:00:00Z) nor "
                         "Unix seconds") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name}={value!r} has no time zone (add Z or an offset)")
    return parsed.timestamp()


def parse_request(query: Any) -> ExportRequest:
    """The export request of a query string.

    Raises:
        ValueError: a missing room, an unknown format, bad times, ``from`` after ``to``.
    """
    room = (query.get("room") or "").strip()
    if not room:
        raise ValueError("room is required (?room=ROOM_ID)")
    fmt = (query.get("format") or "jsonl").strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    since, until = parse_when(query.get("from"), "from"), parse_when(query.get("to"), "to")
    if since is not None and until is not None and since > until:
        raise ValueError("from is after to")
    return ExportRequest(room, since, until, fmt)


async def export_handler(console: Console, request: web.Request) -> web.StreamResponse:
    """The route; the exporter comes from ``console``."""
    principal = console.auth.require(request, "auditor")
    try:
        wanted = parse_request(request.query)
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, str(exc)) from exc
    if console.exporter is None:
        raise _error(web.HTTPServiceUnavailable, "no audit store is configured for exports")
    workdir = Path(tempfile.mkdtemp(prefix="roomwarden-export-"))
    try:
        try:
            bundle = await asyncio.to_thread(_build, console.exporter, wanted, workdir)
        except LookupError as exc:
            raise _error(web.HTTPNotFound, str(exc)) from exc
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from exc
        except Exception as exc:  # the store's own errors (e.g. a broken chain) name the cause
            log.error("console_export_failed", auditor=principal.name, room_id=wanted.room_id,
                      error=repr(exc))
            raise _error(web.HTTPInternalServerError, f"export failed: {exc}") from exc
        size = bundle.stat().st_size
        log.info("console_export", auditor=principal.name, room_id=wanted.room_id,
                 since=wanted.since, until=wanted.until, format=wanted.format, bytes=size,
                 peer=request.remote)
        console._emit("export", format=wanted.format, bytes=size)
        response = web.StreamResponse(headers={
            "Content-Type": _content_type(bundle),
            "Content-Disposition": f'attachment; filename="{bundle.name}"',
            "Content-Length": str(size)})
        await response.prepare(request)
        with bundle.open("rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(shutil.rmtree, workdir)


def _build(exporter: Exporter, wanted: ExportRequest, workdir: Path) -> Path:
    out = workdir / "bundle"
    out.mkdir()
    made = exporter(wanted, out)
    if made.is_file():
        return made
    tar_path = workdir / f"roomwarden-export-{_safe(wanted.room_id)}.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(made, arcname=tar_path.stem)
    return tar_path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "room"


def _content_type(path: Path) -> str:
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".zip"):
        return "application/zip"
    if suffixes.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    return "application/x-tar"


def _error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")
