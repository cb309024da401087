"""Models named by a Hugging Face hub id (``Systran/faster-whisper-small``), fetched where a
network exists.

The download is huggingface_hub's ``snapshot_download`` with faster-whisper's own file list,
into ``<cache_root>/hub`` (huggingface_hub's cache layout). Without a network, a repository
downloaded earlier is used from that cache; otherwise the error says the hub could not be
reached. The weights are not trusted for being on the hub: the registry hashes ``model.bin``
so the ``model_id`` names them, and checks it against an operator's pin when one is given.
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.model_integrity import MODEL_FILE, ModelNotFoundError

__all__ = ["HUB_FILES", "download_from_hub", "looks_like_hub_id"]

HUB_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json",
             "vocabulary.*"]
"""What a CTranslate2 Whisper model needs (faster_whisper.utils.download_model's list)."""

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` with the hub's characters; the caller checks it is not a local path."""
    return _HUB_ID.fullmatch(name) is not None and ".." not in name


def download_from_hub(repo_id: str, cache_root: Path, *, timeout_s: float = 10.0) -> Path:
    """Fetch (or find in the cache) a CTranslate2 Whisper model from the hub.

    Args:
        repo_id: ``owner/name`` on the hub.
        cache_root: the registry's cache; the hub cache is ``cache_root / "hub"``.
        timeout_s: how long the hub gets to answer the first request (which revision is
            current) before the cached copy is used or the id fails.

    Returns:
        The snapshot directory holding ``model.bin``.

    Raises:
        ModelNotFoundError: the hub is unreachable and the repository is not cached, the
            repository does not exist (or is gated), or it holds no CTranslate2 model.
    """
    # Deferred: huggingface_hub costs ~0.3 s to import and only hub ids need it.
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub_cache = cache_root / "hub"
    # Ask for the current revision first, with our timeout: snapshot_download's own first
    # request has none (huggingface_hub 2.x), so a network that swallows packets would hang
    # it for minutes. Given a commit hash, snapshot_download skips that request.
    revision: str | None = None
    unreachable: Exception | None = None
    try:
        revision = HfApi().model_info(repo_id, timeout=timeout_s).sha
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise ModelNotFoundError(
            f"model {repo_id!r}: the Hugging Face hub has no such repository, or it needs "
            f"access rights ({exc.__class__.__name__}: {_first_line(exc)})"
        ) from exc
    except HFValidationError as exc:
        raise ModelNotFoundError(f"model {repo_id!r} is not a valid hub id: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 -- see below
        # No network, a timeout, offline mode, a 5xx: the transport's exception types belong
        # to whichever HTTP client huggingface_hub uses (requests before 1.0, httpx since), so
        # any failure here means "use the cache if there is one".
        unreachable = exc
    try:
        path = Path(snapshot_download(repo_id, revision=revision, cache_dir=hub_cache,
                                      allow_patterns=HUB_FILES, etag_timeout=timeout_s,
                                      local_files_only=unreachable is not None))
    except LocalEntryNotFoundError as exc:
        cause = unreachable or exc
        raise ModelNotFoundError(
            f"model {repo_id!r} is not a local directory, and as a Hugging Face hub id it could "
            f"not be fetched: the hub could not be reached (no network?) and {hub_cache} holds "
            f"no copy. Download it where a network exists, or point at a local CTranslate2 "
            f"directory. ({cause.__class__.__name__}: {_first_line(cause)})"
        ) from exc
    except HfHubHTTPError as exc:
        raise ModelNotFoundError(
            f"model {repo_id!r}: fetching it from the Hugging Face hub failed "
            f"({exc.__class__.__name__}: {_first_line(exc)})"
        ) from exc
    if not (path / MODEL_FILE).is_file():
        raise ModelNotFoundError(
            f"model {repo_id!r} on the Hugging Face hub is not a CTranslate2 model (no "
            f"{MODEL_FILE}); convert it with `ct2-transformers-converter --model {repo_id} "
            f"--output_dir DIR --quantization int8` and point at DIR"
        )
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
