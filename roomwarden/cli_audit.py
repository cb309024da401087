"""``roomwarden export`` / ``roomwarden verify`` and ``roomwarden audit ...``: the audit log.

    roomwarden export --room R [--from T] [--to T] [--format jsonl|csv|vtt] [-o PATH]
    roomwarden verify BUNDLE [--key-id ID]
    roomwarden audit checkpoint [--room R]       sign the current head of every room (or one)
    roomwarden audit purge [--days N] [--room R] retention: purge, leaving signed purge records
    roomwarden audit verify-room [--room R]      walk the stored chains (sanity check)

Times (``--from``/``--to``) are RFC 3339 (``2026-11-21T20:00:00Z``, an offset is required) or
Unix seconds; the window is ``from <= occurred_at < to``. The store and key come from
``audit.url`` / ``audit.key_path`` (``ROOMWARDEN_AUDIT__URL`` ...), or ``--store`` / ``--key``.

Exit codes: 0 ok; 1 ``verify`` found a problem (the first one is printed) or ``verify-room``
found a broken chain; 2 bad arguments, an unknown room, a store that cannot be opened.

Registered in :mod:`roomwarden.cli`::

    from roomwarden.cli_audit import audit_app, export_command, verify_command
    app.command("export")(export_command)
    app.command("verify")(verify_command)
    app.add_typer(audit_app, name="audit")
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from alerts.audit import AuditError, AuditSettings, AuditStore, open_store
from alerts.audit.export import FORMATS, build_bundle
from alerts.audit.retention import purge_expired, purge_room
from alerts.audit.verify import verify_bundle

__all__ = ["audit_app", "export_command", "parse_time", "verify_command"]

audit_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="The audit log: checkpoints, retention, chain checks.")

from roomwarden.cli_common import ConfigOpt  # noqa: E402

StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Audit store URL (default: audit.url).")]
KeyOpt = Annotated[Path | None, typer.Option(
    "--key", help="Ed25519 signing key file (default: audit.key_path, else beside a SQLite "
                   "store).")]


def parse_time(text: str) -> float:
    """RFC 3339 (with ``Z`` or an offset) or Unix seconds -> Unix seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    normalized = re.sub(r"[zZ]$", "+00:00", text.replace("t", "T", 1))
    try:
        parsed = datetime.fromisoformat(normalized)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is neither RFC 3339 nor Unix seconds") from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no time zone (add Z or +hh:mm)")
    return parsed.timestamp()


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"roomwarden: {message}", err=True)
    return typer.Exit(code)


def _audit_settings(config: Path | None) -> AuditSettings:
    from roomwarden.settings import ConfigFileError, load_settings
    try:
        settings = load_settings(config)
    except (ConfigFileError, ValueError) as exc:
        raise _fail(f"bad configuration: {exc}") from exc
    return settings.audit


def _open(config: Path | None, store_url: str | None, key: Path | None
          ) -> tuple[AuditStore, AuditSettings]:
    settings = _audit_settings(config)
    try:
        store = open_store(store_url or settings.url, key_path=key or settings.key_path,
                           keep_evidence=settings.keep_evidence)
    except (AuditError, ValueError, OSError, RuntimeError) as exc:
        raise _fail(f"cannot open the audit store: {exc}") from exc
    return store, settings


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y%m%dT%H%M%SZ")


def export_command(
    room: Annotated[str, typer.Option("--room", help="Room id.")],
    since: Annotated[str | None, typer.Option(
        "--from", help="Window start (RFC 3339 or Unix s), inclusive.")] = None,
    until: Annotated[str | None, typer.Option(
        "--to", help="Window end (RFC 3339 or Unix s), exclusive.")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="jsonl (records only), csv or vtt (records + a readable view).")
    ] = "jsonl",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="New directory, or a .tar / .tar.gz file "
                            "(default: ./audit-<room>-<now>.tar.gz).")] = None,
    config: ConfigOpt = None,
    store_url: StoreOpt = None,
    key: KeyOpt = None,
) -> None:
    """Export a room's audit records (and evidence clips) as a signed, verifiable bundle."""
    if fmt not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}")
    start = parse_time(since) if since is not None else None
    end = parse_time(until) if until is not None else None
    store, _ = _open(config, store_url, key)
    try:
        bundle = build_bundle(store, room, since=start, until=end, fmt=fmt)
    except (AuditError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    safe_room = re.sub(r"[^A-Za-z0-9._-]+", "_", room)[:64]
    target = out or Path(f"audit-{safe_room}-{_iso(time.time())}.tar.gz")
    try:
        bundle.write(target)
    except (FileExistsError, OSError) as exc:
        raise _fail(str(exc)) from exc
    info = bundle.manifest["records"]
    span = (f"seq {info['first_seq']}..{info['last_seq']}" if info["count"] else "no records")
    typer.echo(f"{target}: room {room}, {info['count']} records ({span}, "
               f"{info['in_window']} in the window), {bundle.manifest['evidence']['clips']} "
               f"clips, signed by key {bundle.manifest['key_id']}")


def verify_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory or .tar / .tar.gz.")],
    key_id: Annotated[str | None, typer.Option(
        "--key-id", help="Require this signing key id (the operator's, given to you "
                         "out of band); without it any self-consistent key is accepted.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Check an export bundle; exit 1 naming the first record or field that is wrong."""
    result = verify_bundle(bundle, expect_key_id=key_id)
    if as_json:
        problem = result.problem
        typer.echo(json.dumps({
            "ok": result.ok, "room_id": result.room_id, "records": result.records,
            "first_seq": result.first_seq, "last_seq": result.last_seq,
            "key_id": result.key_id, "checkpoint_seq": result.checkpoint_seq,
            "problem": None if problem is None else {
                "target": problem.target, "kind": problem.kind, "message": problem.message,
                "seq": problem.seq, "line": problem.line, "field": problem.field}}))
    elif result.ok:
        span = (f"seq {result.first_seq}..{result.last_seq}" if result.records
                else "no records")
        typer.echo(f"OK: room {result.room_id}, {result.records} records ({span}), signed by "
                   f"key {result.key_id}" + ("" if key_id else " (not pinned: pass --key-id)")
                   + (f", covered by checkpoint at seq {result.checkpoint_seq}"
                      if result.checkpoint_seq is not None else ""))
    else:
        assert result.problem is not None
        typer.echo(f"FAILED: {result.problem.message}")
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("checkpoint")
def checkpoint_command(
    room: Annotated[str | None, typer.Option("--room", help="One room (default: all).")] = None,
    config: ConfigOpt = None, store_url: StoreOpt = None, key: KeyOpt = None,
) -> None:
    """Sign and store the current chain head of every room (or one)."""
    store, _ = _open(config, store_url, key)
    with store:
        rooms = [room] if room else store.rooms()
        for room_id in rooms:
            checkpoint = store.checkpoint(room_id)
            typer.echo(f"{room_id}: seq {checkpoint.seq} head {checkpoint.head_hash} "
                       f"key {checkpoint.key_id}")
        typer.echo(f"key {store.key.key_id} public {store.key.public_key_hex}")


@audit_app.command("purge")
def purge_command(
    days: Annotated[float | None, typer.Option(
        "--days", help="Retention in days (default: audit.retention_days).")] = None,
    room: Annotated[str | None, typer.Option("--room", help="One room (default: all).")] = None,
    config: ConfigOpt = None, store_url: StoreOpt = None, key: KeyOpt = None,
) -> None:
    """Purge entries recorded longer ago than the retention period (signed purge records)."""
    store, settings = _open(config, store_url, key)
    retention = settings.retention_days if days is None else days
    if not retention > 0:
        raise _fail("--days must be positive")
    with store:
        if room is None:
            reports = purge_expired(store, retention)
        else:
            one = purge_room(store, room, before=time.time() - retention * 86_400,
                             retention_days=retention)
            reports = [] if one is None else [one]
    for report in reports:
        typer.echo(f"{report.room_id}: purged {report.count} entries (seq {report.first_seq}.."
                   f"{report.last_seq}, {report.evidence_deleted} clips); purge record seq "
                   f"{report.record.seq}")
    if not reports:
        typer.echo(f"nothing older than {retention:g} days")


@audit_app.command("verify-room")
def verify_room_command(
    room: Annotated[str | None, typer.Option("--room", help="One room (default: all).")] = None,
    config: ConfigOpt = None, store_url: StoreOpt = None, key: KeyOpt = None,
) -> None:
    """Walk the stored chains: contiguity, hashes, evidence, checkpoints, purge anchors."""
    store, _ = _open(config, store_url, key)
    failed = False
    with store:
        for room_id in [room] if room else store.rooms():
            report = store.verify_room(room_id)
            failed |= not report.ok
            typer.echo(f"{room_id}: " + ("ok" if report.ok else f"BROKEN: {report.problem}")
                       + f" ({report.entries} entries, {report.checkpoints} checkpoints)")
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":  # pragma: no cover - python -m roomwarden.cli_audit
    app = typer.Typer(add_completion=False, no_args_is_help=True)
    app.command("export")(export_command)
    app.command("verify")(verify_command)
    app.add_typer(audit_app, name="audit")
    app()
