"""``roomwarden room``: simulate a live room on a Janus server (demos, tests, load).

    roomwarden room speak --janus URL --room R [--display NAME]... FILE...

Each file is a separate speaker, published into the VideoRoom concurrently in real time
(:func:`ingest.janus_publisher.publish_file_to_videoroom`), as browsers in a real room would.
Registered in :mod:`roomwarden.cli` with ``app.add_typer(room_app, name="room")``; also
runnable as ``python -m roomwarden.cli_room``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from roomwarden.logs import configure_logging

room_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Simulate a live room on a Janus server.")


@room_app.callback()
def _room() -> None:
    """Simulate a live room on a Janus server."""
    # A callback keeps ``speak`` a subcommand when this app runs on its own (typer would
    # otherwise collapse a one-command app into that command).


def _fail(message: str) -> typer.Exit:
    typer.echo(f"roomwarden room: {message}", err=True)
    return typer.Exit(2)


async def _speak(janus: str, room: int, files: list[Path], displays: list[str]) -> None:
    """Publish every file at once; the first failure cancels the others and is raised."""
    from ingest.janus_publisher import publish_file_to_videoroom

    async def one(path: Path, display: str) -> None:
        feed = await publish_file_to_videoroom(janus, room, path, display)
        typer.echo(f"published {path.name} as {display!r} (participant {feed})")

    tasks = [asyncio.create_task(one(f, d)) for f, d in zip(files, displays, strict=True)]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:  # on an error, or Ctrl-C: stop the other speakers (they leave the room)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


@room_app.command()
def speak(
    files: Annotated[list[Path], typer.Argument(help="Audio files, one speaker each.")],
    janus: Annotated[str, typer.Option("--janus", help="Janus HTTP API root, e.g. "
                                       "http://127.0.0.1:8088/janus.")],
    room: Annotated[int, typer.Option("--room", help="VideoRoom id (must exist).")],
    display: Annotated[list[str] | None, typer.Option(
        "--display", help="Display name of each speaker, in file order (default: file stem)."
    )] = None,
    ice_host: Annotated[list[str] | None, typer.Option(
        "--ice-host", help="Only offer these local addresses as ICE candidates (default: "
                           "every interface but loopback).")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Publish each FILE as a separate speaker into Janus VideoRoom ROOM, all at once.

    Exits 0 once every file has played, 2 on a Janus error (room missing, Janus unreachable)
    or an unreadable file.
    """
    from ingest.errors import IngestError
    from ingest.ice import restrict_host_addresses

    names = list(display or [])
    if len(names) > len(files):
        raise _fail(f"{len(names)} --display names for {len(files)} files")
    names += [f.stem for f in files[len(names):]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise _fail(f"no such file: {', '.join(missing)}")
    configure_logging(log_level)
    try:
        restrict_host_addresses(ice_host or None)
    except ValueError as exc:
        raise _fail(f"--ice-host: {exc}") from exc
    try:
        asyncio.run(_speak(janus, room, files, names))
    except IngestError as exc:  # JanusError is one
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        restrict_host_addresses(None)


if __name__ == "__main__":  # pragma: no cover
    room_app()
