"""``roomwarden webhooks``: host-warning webhook secrets and the outbox.

    roomwarden webhooks secret [--bytes N]      a new signing secret (whsec_...) for a host
    roomwarden webhooks status OUTBOX           deliveries per state, disabled endpoints
    roomwarden webhooks enable OUTBOX URL       deliver to an endpoint that answered 410 again

Registered in :mod:`roomwarden.cli` with ``app.add_typer(webhooks_app, name="webhooks")``.
The outbox is ``webhooks.outbox_path``; ``enable`` is safe while ``serve`` runs (SQLite).
Exit codes: 0 ok, 1 ``enable`` of an endpoint that was not disabled, 2 a bad argument.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from alerts.webhooks import Outbox, generate_secret

webhooks_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Host-warning webhooks: secrets and the outbox.")

OutboxArg = Annotated[Path, typer.Argument(help="The outbox file (webhooks.outbox_path).")]


def _open(path: Path) -> Outbox:
    if not path.is_file():
        typer.echo(f"roomwarden webhooks: no outbox at {path}", err=True)
        raise typer.Exit(2)
    return Outbox(path)


@webhooks_app.command("secret")
def secret(nbytes: Annotated[int, typer.Option("--bytes", min=24, max=64,
                                               help="Random bytes in the secret.")] = 32
           ) -> None:
    """Print a new signing secret in Standard Webhooks form (give it to the host too)."""
    typer.echo(generate_secret(nbytes))


@webhooks_app.command("status")
def status(outbox: OutboxArg) -> None:
    """Deliveries per state and the disabled endpoints, as JSON."""
    box = _open(outbox)
    try:
        disabled = [{"url": d.url, "disabled_at": datetime.fromtimestamp(
            d.disabled_at, tz=UTC).isoformat(), "webhook_id": d.webhook_id}
            for d in box.disabled_endpoints()]
        typer.echo(json.dumps({"deliveries": box.counts(), "disabled_endpoints": disabled},
                              indent=2))
    finally:
        box.close()


@webhooks_app.command("enable")
def enable(outbox: OutboxArg,
           url: Annotated[str, typer.Argument(help="The endpoint URL, as configured.")]
           ) -> None:
    """Deliver to ``URL`` again after it answered 410 Gone (later warnings only)."""
    box = _open(outbox)
    try:
        if not box.enable_endpoint(url):
            typer.echo(f"roomwarden webhooks: {url} was not disabled", err=True)
            raise typer.Exit(1)
    finally:
        box.close()
    typer.echo(f"enabled {url}")
