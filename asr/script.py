"""Chinese script normalisation: transcripts in Simplified characters.

Whisper writes Chinese in whichever script its training subtitles used for similar audio: the
same speaker can come out in Simplified in one segment and Traditional in the next (measured:
Whisper base writes the FunASR demo sentence in Simplified and a Paraformer demo clip in
Traditional). Rules, keyword lists and reviewers work on one script, so every Chinese
transcript is converted to Simplified.

Conversion is OpenCC (the ``opencc`` package: the project's own Python binding, C++ core,
bundled dictionaries, wheels for CPython 3.11 on manylinux x86_64) with the ``t2s`` config:
Traditional characters to Simplified, with phrase-level disambiguation (``乾隆`` stays,
``乾燥`` becomes ``干燥``). Not ``tw2sp``/``hk2s``: those also rewrite Taiwan / Hong Kong
vocabulary (``計程車`` -> ``出租车``), which would put words in a speaker's mouth that they
did not say, and they assume a region Whisper's output does not carry. Text without Chinese
characters is returned unchanged without touching the converter.
"""

from __future__ import annotations

import re
import threading
from typing import Any

__all__ = ["OPENCC_CONFIG", "contains_han", "to_simplified"]

OPENCC_CONFIG = "t2s.json"
"""OpenCC conversion: Traditional Chinese (OpenCC standard) to Simplified, characters and
phrases, no regional vocabulary."""

# CJK Unified Ideographs, Extension A, Compatibility Ideographs: where Traditional characters
# that have a Simplified form live. Other scripts never need conversion.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_converter: Any = None
_converter_lock = threading.Lock()


def contains_han(text: str) -> bool:
    """True when ``text`` has at least one Chinese (Han) character."""
    return _HAN.search(text) is not None


def to_simplified(text: str) -> str:
    """``text`` with Traditional Chinese characters converted to Simplified.

    Non-Chinese text (English, digits, punctuation) is kept as it is; already Simplified text
    comes back unchanged. Safe to call from any thread.
    """
    if not contains_han(text):
        return text
    return str(_get_converter().convert(text))


def _get_converter() -> Any:
    """The process-wide converter, built on first use (loading the dictionaries takes ~5 ms but
    importing OpenCC is not free, and most rooms never need it)."""
    global _converter
    converter = _converter
    if converter is None:
        with _converter_lock:
            if _converter is None:
                import opencc

                _converter = opencc.OpenCC(OPENCC_CONFIG)
            converter = _converter
    # OpenCC's Convert is const over read-only dictionaries: one converter serves all threads.
    return converter
