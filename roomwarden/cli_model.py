"""``roomwarden model``: the models RoomWarden can load, their pins, and installing them.

    roomwarden model list                     registered models, installed or not, sha256 pins
    roomwarden model verify NAME_OR_DIR       resolve and verify; prints the model_id
    roomwarden model install NAME             pip-installs a registered model's packages (and
                                              reassembles a split model into the cache)

Registered in :mod:`roomwarden.cli` with ``app.add_typer(model_app, name="model")``; also
runnable as ``python -m roomwarden.cli_model``. Exit codes: 0 ok, 1 a model that does not match
its pin (or a failed pip install), 2 a model that cannot be found or a bad argument.
"""

from __future__ import annotations

import importlib
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from asr.model_assembly import cache_dir_for, cached_model_is_intact
from asr.models import (
    KNOWN_MODELS,
    ModelError,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelSpec,
    RegisteredModel,
    default_cache_root,
    resolve_model,
    verify_model,
)
from roomwarden.logs import configure_logging

model_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="List, verify and install speech recognition models.")

CacheOpt = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Model cache (default: $ROOMWARDEN_MODEL_CACHE, else "
                        "~/.cache/roomwarden/models).")]


@model_app.callback()
def _model() -> None:
    """List, verify and install speech recognition models."""
    # Warnings only (a rebuilt cache); the commands' own output goes to stdout.
    configure_logging("warning")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"roomwarden model: {message}", err=True)
    return typer.Exit(code)


def model_state(entry: RegisteredModel, name: str, cache_root: Path) -> str:
    """``ready``, ``installed`` (split: reassembled on first use) or ``not installed``."""
    if entry.locate is not None:
        try:
            path = entry.locate()
        except ImportError:
            return "not installed"
        return "ready" if (path / "model.bin").is_file() else "not installed"
    if cached_model_is_intact(cache_dir_for(cache_root, name, entry.sha256), entry.sha256,
                              entry.files):
        return "ready"
    try:
        for packaged in (*entry.parts, *entry.files):
            packaged.locate()
    except ModelNotFoundError:
        return "not installed"
    return "installed"


@model_app.command("list")
def list_models(cache_dir: CacheOpt = None) -> None:
    """Registered models: state, sha256 pin of model.bin, languages, how to install."""
    root = cache_dir or default_cache_root()
    for name, entry in KNOWN_MODELS.items():
        state = model_state(entry, name, root)
        typer.echo(f"{name:<10} {state:<14} sha256 {entry.sha256}")
        typer.echo(f"{'':<10} {entry.description}")
        typer.echo(f"{'':<10} languages: {entry.languages}")
        typer.echo(f"{'':<10} install: {entry.install}"
                   + (f"  (or roomwarden[{entry.extra}])" if entry.extra else ""))
    typer.echo(f"model cache: {root}")
    typer.echo("Also: any CTranslate2 Whisper directory (ct2-transformers-converter output), or a "
               "Hugging Face hub id such as Systran/faster-whisper-small where a network exists.")


def _resolve_and_verify(name_or_dir: str, sha256: str | None, cache_dir: Path | None) -> ModelSpec:
    try:
        spec = resolve_model(name_or_dir, expected_sha256=sha256, cache_dir=cache_dir)
        verify_model(spec)
    except ModelIntegrityError as exc:
        raise _fail(str(exc), code=1) from exc
    except ModelError as exc:  # not found, cache not writable
        raise _fail(str(exc)) from exc
    return spec


@model_app.command()
def verify(
    name_or_dir: Annotated[str, typer.Argument(
        metavar="NAME_OR_DIR", help="Registered name, CTranslate2 directory or hub id.")],
    sha256: Annotated[str | None, typer.Option(
        "--sha256", help="Expected sha256 of model.bin (directories and hub ids).")] = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Resolve a model and check model.bin against its sha256 pin; print its model_id.

    Exits 1 when the file does not match (the reason on stderr), 2 when it cannot be found.
    """
    started = time.perf_counter()
    spec = _resolve_and_verify(name_or_dir, sha256, cache_dir)
    typer.echo(f"ok {spec.model_id} sha256 {spec.sha256} {spec.path} "
               f"({time.perf_counter() - started:.2f} s)")


@model_app.command()
def install(
    name: Annotated[str, typer.Argument(help="Registered model name, or a hub id to download.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the pip command instead of running it.")] = False,
    cache_dir: CacheOpt = None,
) -> None:
    """Install a registered model's pinned packages with this Python's pip, then resolve and
    verify it (a split model such as base is reassembled into the cache). A hub id is
    downloaded into the cache instead."""
    entry = KNOWN_MODELS.get(name)
    if entry is not None:
        command = [sys.executable, "-m", "pip", "install", *entry.requirements]
        typer.echo(f"$ {shlex.join(command)}")
        if dry_run:
            return
        rc = subprocess.run(command, check=False).returncode
        if rc != 0:
            raise _fail(f"pip install failed (exit {rc})", code=1)
        importlib.invalidate_caches()  # packages installed a moment ago must be importable
    elif dry_run:
        raise _fail(f"{name!r} is not a registered model; --dry-run applies to registered ones: "
                    f"{', '.join(KNOWN_MODELS)}")
    started = time.perf_counter()
    spec = _resolve_and_verify(name, None, cache_dir)
    typer.echo(f"installed {spec.model_id} at {spec.path} "
               f"(resolved and verified in {time.perf_counter() - started:.2f} s)")


if __name__ == "__main__":  # pragma: no cover
    model_app()
