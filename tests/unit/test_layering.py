"""Data flows ingest -> asr -> policy -> alerts, and imports follow it; no stage imports the
composition root. Checked on the source, so a stray import fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["ingest", "asr", "policy", "alerts"]
FORBIDDEN = {stage: set(ORDER[i + 1:]) | {"roomwarden", "bench", "tests"}
             for i, stage in enumerate(ORDER)}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("stage", ORDER)
def test_stage_imports_only_earlier_stages(stage: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[stage])
        for path in (ROOT / stage).rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}
