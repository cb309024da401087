"""``roomwarden room speak`` against a real Janus VideoRoom, run as a process in its namespace.

Janus and the command run inside a network namespace of the test's own
(:mod:`tests.janus_harness`); skips where that cannot be set up. The checks that need no
server use typer's CliRunner.
"""

from __future__ import annotations

import asyncio
import sys
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

from ingest.janus_api import JanusSession
from ingest.janus_videoroom import VIDEOROOM, list_participants
from roomwarden.cli_room import room_app
from tests.janus_harness import JanusNetns, janus_in_netns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SAMPLES = Path(__file__).resolve().parents[2] / "roomwarden" / "samples"
ROOM = 1234  # configured by the harness


def _clip(name: str, dest: Path, seconds: float) -> Path:
    """The first ``seconds`` of a sample speaker's track."""
    with wave.open(str(SAMPLES / f"speaker_{name}.wav"), "rb") as src:
        params, frames = src.getparams(), src.readframes(round(seconds * src.getframerate()))
    out = dest / f"{name}.wav"
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
    return out


async def _watch_room(base_url: str, until: int, timeout_s: float) -> set[str]:
    """Inside the namespace: poll the room until ``until`` publishers were seen at once."""
    seen: set[str] = set()
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, base_url) as janus:
        handle = await janus.attach(VIDEOROOM)
        async with asyncio.timeout(timeout_s):
            while len(seen) < until:
                people = await list_participants(handle, ROOM)
                seen = {str(p.get("display")) for p in people if p.get("publisher")}
                await asyncio.sleep(0.2)
        await handle.detach()
    return seen


async def _speak(jn: JanusNetns, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *jn.exec_args(sys.executable, "-m", "roomwarden.cli_room", "speak",
                      "--ice-host", jn.client_addr, *args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_speak_publishes_every_file_at_once(tmp_path: Path) -> None:
    alice, bob = _clip("alice", tmp_path, 4.0), _clip("bob", tmp_path, 4.0)
    async with janus_in_netns("rwroom") as jn:
        res: dict[str, Any] = {}
        watch = asyncio.ensure_future(jn.run_in_netns(_watch_room, jn.base_url, 2, 20))
        try:
            res["ok"] = await _speak(jn, "--janus", jn.base_url, "--room", str(ROOM),
                                     "--display", "Alice A.", str(alice), str(bob))
            res["seen"] = await watch
        except BaseException:
            watch.cancel()
            print(jn.log_tail())
            raise
        res["no_room"] = await _speak(jn, "--janus", jn.base_url, "--room", "999", str(bob))
        res["no_janus"] = await _speak(jn, "--janus", f"http://{jn.janus_addr}:8099/janus",
                                       "--room", str(ROOM), str(bob))

    code, out, err = res["ok"]
    assert code == 0, err
    assert res["seen"] == {"Alice A.", "bob"}  # both publishing at the same time
    lines = sorted(out.splitlines())
    assert len(lines) == 2 and lines[0].startswith("published alice.wav as 'Alice A.'"), out
    assert lines[1].startswith("published bob.wav as 'bob'"), out

    code, out, err = res["no_room"]
    assert code == 2 and "Janus error 426" in err and "999" in err, err
    assert err.count("\n") == 1, err  # one clear line, no traceback
    code, out, err = res["no_janus"]
    assert code == 2 and "cannot reach" in err and err.count("\n") == 1, err


@pytest.mark.parametrize(("args", "expect"), [
    (["--display", "a", "--display", "b", "{clip}"], "2 --display names for 1 files"),
    (["{missing}"], "no such file"),
    (["--ice-host", "not-an-ip", "{clip}"], "--ice-host"),
])
def test_speak_refuses_bad_arguments(tmp_path: Path, args: list[str], expect: str) -> None:
    clip = _clip("bob", tmp_path, 0.5)
    argv = [a.format(clip=clip, missing=tmp_path / "nope.wav") for a in args]
    res = CliRunner().invoke(room_app, ["speak", "--janus", "http://127.0.0.1:9/janus",
                                       "--room", "1", *argv])
    assert res.exit_code == 2, res.output
    assert expect in res.output
