"""``roomwarden demo``, the README's first command, as a new user runs it: the embedded broker,
the bundled model, the sample room over real WebRTC on 127.0.0.1 -- every expected alert once,
nothing else, and all of them in a verifying audit log that exports and verifies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def test_demo_passes_and_its_audit_log_exports_and_verifies(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path),
           "ROOMWARDEN_AUDIT__URL": f"sqlite:///{tmp_path / 'audit.db'}"}
    cli = [sys.executable, "-m", "roomwarden"]
    demo = subprocess.run([*cli, "demo"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "demo passed" in demo.stdout
    assert "5/5 alerts of this run recorded; hash chain verifies" in demo.stdout
    bundle = tmp_path / "bundle"
    export = subprocess.run([*cli, "export", "--room", "sample-room", "-o", str(bundle)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    verify = subprocess.run([*cli, "verify", str(bundle)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stdout.startswith("OK"), verify.stdout
    assert len(list((bundle / "clips").glob("*.wav"))) == 5  # the flagged speech itself
