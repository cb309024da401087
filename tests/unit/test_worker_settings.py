"""Distributed-mode settings: ``pipeline.asr``, ``asr_worker`` and ``policy_worker`` from env
(the ``ROOMWARDEN_ASR_WORKER__*`` names the ASR worker always had) and from a TOML file; the
``worker`` commands' refusals of bad configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from roomwarden.cli import app
from roomwarden.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ROOMWARDEN_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    s = load_settings()
    assert s.pipeline.asr == "local"
    assert (s.asr_worker.group_id, s.asr_worker.segments_topic, s.asr_worker.dlq_topic) == \
        ("roomwarden-asr", "roomwarden.segments.v1", "roomwarden.segments.dlq.v1")
    assert (s.policy_worker.group_id, s.policy_worker.dlq_topic) == \
        ("roomwarden-policy", "roomwarden.transcripts.dlq.v1")
    assert s.asr_worker.metrics_port != s.policy_worker.metrics_port  # both on one host


def test_worker_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMWARDEN_PIPELINE__ASR", "kafka")
    monkeypatch.setenv("ROOMWARDEN_ASR_WORKER__MAX_BATCH", "8")
    monkeypatch.setenv("ROOMWARDEN_ASR_WORKER__SEGMENTS_TOPIC", "segs")
    monkeypatch.setenv("ROOMWARDEN_POLICY_WORKER__GROUP_ID", "pol")
    monkeypatch.setenv("ROOMWARDEN_POLICY_WORKER__SESSION_TIMEOUT_MS", "6000")
    s = load_settings()
    assert s.pipeline.asr == "kafka"
    assert (s.asr_worker.max_batch, s.asr_worker.segments_topic) == (8, "segs")
    assert (s.policy_worker.group_id, s.policy_worker.session_timeout_ms) == ("pol", 6000)


def test_worker_settings_from_toml_under_env(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "rw.toml"
    toml.write_text('[pipeline]\nasr = "kafka"\n'
                    '[asr_worker]\ngroup_id = "asr-eu"\nmax_batch = 32\n'
                    '[policy_worker]\ndlq_topic = "bad.transcripts"\nmax_batch = 128\n')
    monkeypatch.setenv("ROOMWARDEN_ASR_WORKER__MAX_BATCH", "4")  # env beats the file
    s = load_settings(toml)
    assert s.pipeline.asr == "kafka"
    assert (s.asr_worker.group_id, s.asr_worker.max_batch) == ("asr-eu", 4)
    assert (s.policy_worker.dlq_topic, s.policy_worker.max_batch) == ("bad.transcripts", 128)


def test_bad_values_are_named() -> None:
    with pytest.raises(ValidationError, match="pipeline.asr"):
        load_settings(pipeline={"asr": "remote"})
    with pytest.raises(ValidationError, match="policy_worker.max_batch"):
        load_settings(policy_worker={"max_batch": 0})


@pytest.mark.parametrize("command", ["asr", "policy"])
def test_worker_commands_refuse_bad_configuration(command: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["worker", command])
    assert result.exit_code == 2 and "kafka.bootstrap_servers" in result.output
    monkeypatch.setenv("ROOMWARDEN_POLICY_WORKER__MAX_BATCH", "none")
    result = CliRunner().invoke(app, ["worker", command])
    assert result.exit_code == 2 and "policy_worker.max_batch" in result.output


def test_policy_worker_names_a_broken_rule_pack(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pack = tmp_path / "rules.yaml"
    pack.write_text("name: x\ncategories: [\n")
    monkeypatch.setenv("ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("ROOMWARDEN_POLICY__RULES", str(pack))
    result = CliRunner().invoke(app, ["worker", "policy"])
    assert result.exit_code == 2 and "rules.yaml" in result.output
