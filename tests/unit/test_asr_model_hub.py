"""Hub ids (``owner/name``): fetched where a network exists, from the cache otherwise, and a
clear error when neither works -- never a hang.

This machine has no route to the Hugging Face hub, and tests keep traffic on 127.0.0.1: the
hub endpoint is pointed at loopback sockets that refuse, or accept and never answer (what a
firewall that drops packets looks like). The cached-copy test lays out huggingface_hub's own
cache format and lets the real client find it.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants

from asr.model_hub import looks_like_hub_id
from asr.models import ModelIntegrityError, ModelNotFoundError, resolve_model, verify_model

REPO = "Systran/faster-whisper-small"


@pytest.fixture
def refused_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    """A loopback port nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(constants, "ENDPOINT", url)  # what HF_ENDPOINT sets
    return url


@pytest.fixture
def silent_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        monkeypatch.setattr(constants, "ENDPOINT", url)
        yield url


@pytest.mark.parametrize(("name", "expected"), [
    ("Systran/faster-whisper-small", True),
    ("openai/whisper-large-v3", True),
    ("distil-whisper/distil-large-v3.5", True),
    ("tiny.en", False),
    ("small", False),
    ("/models/small", False),
    ("./small", False),
    ("owner/name/extra", False),
    ("../owner", False),
    ("owner/..", False),
    ("owner/", False),
])
def test_hub_id_shape(name: str, expected: bool) -> None:
    assert looks_like_hub_id(name) is expected


def test_unreachable_hub_is_a_clear_error(refused_endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(REPO, cache_dir=tmp_path, hub_timeout_s=2)

    message = str(err.value)
    assert repr(REPO) in message
    assert "not a local directory" in message
    assert "could not be reached (no network?)" in message
    assert str(tmp_path / "hub") in message
    assert "Connection refused" in message or "ConnectError" in message


def test_silent_hub_times_out_instead_of_hanging(silent_endpoint: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="could not be reached"):
        resolve_model(REPO, cache_dir=tmp_path, hub_timeout_s=0.5)
    # huggingface_hub also spends up to ~3 s once per process on a request of its own.
    assert time.monotonic() - started < 10


def _cache_hub_snapshot(cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """Lay out a downloaded repository the way huggingface_hub caches it."""
    repo = cache / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_cached_hub_model_is_used_without_a_network(refused_endpoint: str,
                                                    tmp_path: Path) -> None:
    weights = b"ct2 weights" * 1000
    snapshot = _cache_hub_snapshot(tmp_path, REPO, {"model.bin": weights, "config.json": b"{}"})
    digest = hashlib.sha256(weights).hexdigest()

    spec = resolve_model(REPO, cache_dir=tmp_path, hub_timeout_s=2)

    assert spec.path == snapshot
    assert spec.name == REPO
    assert spec.sha256 == digest
    assert spec.model_id == f"{REPO}@{digest[:12]}"
    verify_model(spec)


def test_cached_hub_model_is_checked_against_an_operator_pin(refused_endpoint: str,
                                                             tmp_path: Path) -> None:
    _cache_hub_snapshot(tmp_path, REPO, {"model.bin": b"weights"})

    with pytest.raises(ModelIntegrityError, match="expected " + "ab" * 32):
        resolve_model(REPO, cache_dir=tmp_path, expected_sha256="ab" * 32, hub_timeout_s=2)


def test_hub_repository_without_model_bin_is_not_a_ct2_model(refused_endpoint: str,
                                                              tmp_path: Path) -> None:
    _cache_hub_snapshot(tmp_path, "openai/whisper-small", {"config.json": b"{}"})

    with pytest.raises(ModelNotFoundError, match="not a CTranslate2 model.*ct2-transformers"):
        resolve_model("openai/whisper-small", cache_dir=tmp_path, hub_timeout_s=2)


def test_existing_relative_directory_wins_over_a_hub_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "Systran" / "faster-whisper-small"
    local.mkdir(parents=True)
    (local / "model.bin").write_bytes(b"local weights")
    monkeypatch.chdir(tmp_path)

    assert resolve_model(REPO).path == local.resolve()
