"""The ``roomwarden`` command (typer).

    roomwarden serve      WHIP endpoint (+ Janus room tap, WHEP pulls, notices) + pipeline +
                          /metrics, against Kafka
    roomwarden demo       everything embedded: local broker, bundled model, sample room
    roomwarden moderate   the pipeline over recorded files, one speaker per file
    roomwarden room       simulate a live room on a Janus server
    roomwarden model      list, verify and install speech recognition models
    roomwarden worker     pipeline stages as Kafka consumer-group workers (``worker asr``)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer

from roomwarden.cli_audit import audit_app, export_command, verify_command
from roomwarden.cli_common import ConfigOpt, load_cli_settings
from roomwarden.cli_console import console
from roomwarden.cli_model import model_app
from roomwarden.cli_room import room_app
from roomwarden.cli_webhooks import webhooks_app
from roomwarden.cli_worker import worker_app
from roomwarden.cli_worker_audit import audit as worker_audit

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="RoomWarden: real-time moderation for live voice rooms.")
log = structlog.get_logger(__name__)

def _run(coro: object) -> int:
    """Run the command; turn the errors a user can fix into one clear line and exit 2."""
    from asr.models import ModelIntegrityError, ModelNotFoundError
    from ingest.errors import IngestError
    from policy.rules import RulePackError

    try:
        return int(asyncio.run(coro))  # type: ignore[arg-type]
    except (RulePackError, ModelIntegrityError, ModelNotFoundError, IngestError,
            ValueError) as exc:
        typer.echo(f"roomwarden: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address (http.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (http.port).")] = None,
    janus: Annotated[str | None, typer.Option(
        "--janus", help="Tap the rooms of this Janus server, e.g. http://janus:8088/janus "
        "(janus.url).")] = None,
) -> None:
    """Serve the WHIP endpoint, the pipeline and /metrics against the configured Kafka; with
    --janus (or janus.url), also tap every VideoRoom (and janus.audiobridge_rooms) of that Janus
    server; pull whep.sources; post in-room notices when notices.enabled."""
    settings = load_cli_settings(config)
    if host is not None:
        settings.http.host = host
    if port is not None:
        settings.http.port = port
    if janus is not None:
        settings.janus.url = janus
    if not settings.kafka.bootstrap_servers:
        typer.echo("roomwarden: set kafka.bootstrap_servers (ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS)"
                   " -- or try `roomwarden demo`, which embeds a broker", err=True)
        raise typer.Exit(2)

    async def main() -> int:
        from roomwarden.app import running_pipeline, serving

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with running_pipeline(settings) as running:
            async with serving(running, settings.http.host, settings.http.port):
                await stop.wait()
                log.info("shutting_down")
        return 0

    raise typer.Exit(_run(main()))


@app.command()
def demo(config: ConfigOpt = None) -> None:
    """Run the sample room end to end on embedded defaults and check every alert."""
    # The demo's own output is the live alert list; logs only when something goes wrong,
    # unless the user asked for a level.
    overrides = {} if "ROOMWARDEN_LOG__LEVEL" in os.environ else {"log": {"level": "error"}}
    settings = load_cli_settings(config, overrides=overrides)
    from roomwarden.demo import run_demo

    raise typer.Exit(_run(run_demo(settings)))


@app.command()
def moderate(
    files: Annotated[list[Path], typer.Argument(help="Audio files, one speaker each.")],
    room: Annotated[str, typer.Option("--room", help="Room id for all files.")] = "local",
    rules: Annotated[Path | None, typer.Option("--rules", help="Rule pack YAML.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="CloudEvents JSON lines on stdout.")]
    = False,
    config: ConfigOpt = None,
) -> None:
    """Moderate recorded audio files (each file is one speaker of the room)."""
    settings = load_cli_settings(config)
    if rules is not None:
        settings.policy.rules = rules
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        typer.echo(f"roomwarden: no such file: {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    from roomwarden.moderate import run_moderate

    raise typer.Exit(_run(run_moderate(settings, files, room_id=room, as_json=as_json)))


app.add_typer(room_app, name="room")
app.add_typer(model_app, name="model")
worker_app.command()(worker_audit)
app.command()(console)
app.command("export")(export_command)
app.command("verify")(verify_command)
app.add_typer(audit_app, name="audit")
app.add_typer(worker_app, name="worker")
app.add_typer(webhooks_app, name="webhooks")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
