"""``bench/RESULTS.md`` is shared by several benchmarks, each owning one ``## `` section: these
two functions read and rewrite one section and leave every other byte alone."""

from __future__ import annotations

__all__ = ["extract_section", "replace_section"]


def _bounds(lines: list[str], heading: str) -> tuple[int, int] | None:
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    return start, end


def extract_section(document: str, heading: str) -> str | None:
    """The section of ``document`` whose heading line starts with ``heading`` (up to the next
    ``## `` heading), or None."""
    lines = document.splitlines(keepends=True)
    bounds = _bounds(lines, heading)
    if bounds is None:
        return None
    return "".join(lines[bounds[0]:bounds[1]]).rstrip("\n") + "\n"


def replace_section(document: str, section: str, heading: str) -> str:
    """``document`` with its ``heading`` section replaced by ``section`` (appended when it has
    none)."""
    if not section.startswith(heading):
        raise ValueError(f"section must start with {heading!r}")
    lines = document.splitlines(keepends=True)
    body = section.rstrip("\n") + "\n"
    bounds = _bounds(lines, heading)
    if bounds is None:
        head = document.rstrip("\n")
        return (head + "\n\n" if head else "") + body
    tail = "".join(lines[bounds[1]:])
    return "".join(lines[:bounds[0]]) + body + ("\n" + tail if tail else "")
