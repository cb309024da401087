"""Settings sources, and the CLI's handling of bad input (clear message, exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roomwarden.cli import app
from roomwarden.settings import ConfigFileError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ROOMWARDEN_"):
            monkeypatch.delenv(key)


def test_env_nesting_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "rw.toml"
    toml.write_text('instance = "rw-test"\n[kafka]\nbootstrap_servers = "k1:9092"\n'
                    'linger_ms = 7\n[vad]\nhangover_ms = 600\n')
    monkeypatch.setenv("ROOMWARDEN_KAFKA__LINGER_MS", "9")  # env beats the file
    settings = load_settings(toml)
    assert settings.instance == "rw-test"
    assert settings.kafka.bootstrap_servers == "k1:9092"
    assert settings.kafka.linger_ms == 9
    assert settings.vad.hangover_ms == 600


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="nope.toml"):
        load_settings(tmp_path / "nope.toml")


def test_serve_without_kafka_explains_what_to_set() -> None:
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS" in result.output


def test_moderate_names_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["moderate", str(tmp_path / "ghost.wav")])
    assert result.exit_code == 2
    assert "ghost.wav" in result.output


def test_broken_rule_pack_fails_at_start_with_file_and_line(tmp_path: Path) -> None:
    pack = tmp_path / "rules.yaml"
    pack.write_text("name: x\nversion: '1'\ncategories:\n  abuse:\n    severity: hgh\n"
                    "    suggestion: review\n    terms: [idiot]\n")
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMWARDEN_")}
    proc = subprocess.run([sys.executable, "-m", "roomwarden", "moderate", "--rules", str(pack),
                           str(wav)], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert f"{pack}:5" in proc.stderr or "rules.yaml:5" in proc.stderr, proc.stderr
    assert proc.stdout == ""
