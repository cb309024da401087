"""A bundle on disk: a directory, or a tar archive (``.tar``, ``.tar.gz``, ``.tgz``).

Both hold the same files under the same relative names (``manifest.json``, ``records.jsonl``,
``records.csv`` / ``records.vtt``, ``clips/<sha256>.wav``). Reading never extracts to disk:
members are read into memory, and anything that is not a plain file with a plain relative name
(links, devices, absolute paths, ``..``) is refused, so a hostile bundle cannot write outside
itself or point the verifier at other files.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

__all__ = ["BundleFormatError", "bundle_tar_bytes", "read_bundle", "write_bundle"]

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


class BundleFormatError(ValueError):
    """The path is not a readable bundle (not a directory/tar, or an unsafe member)."""


def _is_tar(path: Path) -> bool:
    return path.name.endswith(TAR_SUFFIXES)


def _safe_name(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise BundleFormatError(f"unsafe member name {name!r}")
    return str(pure)


def bundle_tar_bytes(files: Mapping[str, bytes], *, gzip: bool = False, mtime: float = 0
                     ) -> bytes:
    """The bundle as one tar (``manifest.json`` first, then the rest by name)."""
    out = io.BytesIO()
    order = sorted(files, key=lambda name: (name != "manifest.json", name))
    with tarfile.open(fileobj=out, mode="w:gz" if gzip else "w", format=tarfile.PAX_FORMAT
                      ) as tar:
        for name in order:
            info = tarfile.TarInfo(_safe_name(name))
            info.size = len(files[name])
            info.mtime = int(mtime)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def write_bundle(files: Mapping[str, bytes], path: Path, *, mtime: float = 0) -> Path:
    """Write to a new directory, or to a tar when ``path`` ends in .tar/.tar.gz/.tgz.
    Refuses to overwrite: an export is evidence, and a half-replaced one is worse than none."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists; export to a new path")
    if _is_tar(path):
        data = bundle_tar_bytes(files, gzip=not path.name.endswith(".tar"), mtime=mtime)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path
    path.mkdir(parents=True, exist_ok=True)
    # manifest last: a directory without one is visibly incomplete.
    for name in sorted(files, key=lambda n: (n == "manifest.json", n)):
        target = path / _safe_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[name])
    return path


def read_bundle(path: Path) -> dict[str, bytes]:
    """Every file of a bundle directory or tar, by relative POSIX name."""
    path = Path(path)
    if path.is_dir():
        files: dict[str, bytes] = {}
        for root, dirs, names in os.walk(path, followlinks=False):
            for name in [*names, *dirs]:
                full = Path(root) / name
                rel = full.relative_to(path).as_posix()
                if full.is_symlink():
                    raise BundleFormatError(f"{rel}: symbolic link in bundle")
                if name in names:
                    if not full.is_file():
                        raise BundleFormatError(f"{rel}: not a regular file")
                    files[rel] = full.read_bytes()
        return files
    if path.is_file():
        try:
            with tarfile.open(path, "r:*") as tar:
                files = {}
                for member in tar.getmembers():
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise BundleFormatError(f"{member.name}: not a regular file")
                    name = _safe_name(member.name)
                    if name in files:
                        raise BundleFormatError(f"{name}: twice in the archive")
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    files[name] = extracted.read()
                return files
        except tarfile.TarError as exc:
            raise BundleFormatError(f"{path}: not a tar archive ({exc})") from exc
    raise BundleFormatError(f"{path}: no such bundle (a directory or a .tar/.tar.gz)")
