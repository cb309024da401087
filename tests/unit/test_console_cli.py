"""``roomwarden console`` refuses to start open or without Kafka; console settings come from the
environment until the main settings carry them; the metrics hook counts what the console says."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from prometheus_client import generate_latest
from typer.testing import CliRunner

from roomwarden.cli_console import console
from roomwarden.console_metrics import ConsoleMetrics
from roomwarden.settings import Settings


def run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> tuple[int, str]:
    monkeypatch.delenv("ROOMWARDEN_CONFIG", raising=False)  # an earlier load_settings(file) sets it
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = typer.Typer()
    app.command()(console)
    result = CliRunner().invoke(app, [])
    return result.exit_code, result.output


def test_no_tokens_no_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOMWARDEN_CONSOLE__TOKENS", raising=False)
    code, output = run(monkeypatch, {"ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert code == 2 and "console.tokens" in output and "never open" in output


def test_no_kafka_no_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    code, output = run(monkeypatch, {})
    assert code == 2 and "kafka.bootstrap_servers" in output


def test_console_section_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = [{"name": "ana", "role": "operator", "token_sha256": "a" * 64}]
    monkeypatch.setenv("ROOMWARDEN_CONSOLE__TOKENS", json.dumps(tokens))
    monkeypatch.setenv("ROOMWARDEN_CONSOLE__PORT", "9999")
    section = Settings().console
    assert section.port == 9999 and [t.name for t in section.tokens] == ["ana"]


def test_metrics_follow_the_console_events() -> None:
    metrics = ConsoleMetrics()
    events: list[tuple[str, dict[str, Any]]] = [
                         ("login", {"outcome": "ok"}), ("login", {"outcome": "denied"}),
                         ("denied", {"status": 403}), ("clients", {"count": 3}),
                         ("client_dropped", {"label": "ana", "queued": 256}),
                         ("record", {"kind": "alert"}), ("bad_record", {"reason": "x"}),
                         ("review", {"action": "dismiss", "outcome": "published"}),
                         ("export", {"format": "csv", "bytes": 10}), ("unknown", {})]
    for name, fields in events:
        metrics.on_event(name, fields)
    text = generate_latest(metrics.registry).decode()
    for line in ('roomwarden_console_logins_total{outcome="denied"} 1.0',
                 'roomwarden_console_denied_total{status="403"} 1.0',
                 "roomwarden_console_streams 3.0",
                 "roomwarden_console_streams_dropped_total 1.0",
                 'roomwarden_console_records_total{kind="alert"} 1.0',
                 "roomwarden_console_bad_records_total 1.0",
                 'roomwarden_console_reviews_total{action="dismiss",outcome="published"} 1.0',
                 'roomwarden_console_exports_total{format="csv"} 1.0'):
        assert line in text
    assert "ana" not in text  # no names, rooms or ids as labels
