"""What every ``roomwarden`` command shares: the ``--config`` option and loading the settings
with one clear line (exit 2) for a bad configuration."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from roomwarden.logs import configure_logging
from roomwarden.settings import ConfigFileError, Settings, load_settings

__all__ = ["ConfigOpt", "load_cli_settings"]

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.")]


def load_cli_settings(config: Path | None, *, need_kafka: bool = False,
                      overrides: Mapping[str, object] | None = None) -> Settings:
    """Settings from ``config``, the environment and ``overrides`` (section -> values), logging
    configured; exits 2 naming what is
    wrong (a bad file or value, or no ``kafka.bootstrap_servers`` when ``need_kafka``)."""
    try:
        settings = load_settings(config, **(overrides or {}))
    except (ConfigFileError, ValidationError) as exc:
        typer.echo(f"roomwarden: bad configuration: {exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log.level, settings.log.format)
    if need_kafka and not settings.kafka.bootstrap_servers:
        typer.echo("roomwarden: set kafka.bootstrap_servers (ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS)",
                   err=True)
        raise typer.Exit(2)
    return settings
