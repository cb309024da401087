"""Synthesize the sample room: three speakers' WAV files and ``room.json``.

Run ``python -m roomwarden.samples.synthesize`` (needs ``espeak-ng`` on PATH). The output is
deterministic for a given espeak-ng build: the same script writes byte-identical files.

Each speaker gets one WAV covering the whole room timeline (silence while the others talk), so
the three files have the same length and, played together, form one conversation: what a WHIP
publisher per participant sends. Files are 16 kHz mono s16 -- what the pipeline works in after
decoding -- to keep the repository small; the WebRTC publisher resamples to 48 kHz for Opus.

Most of the talk is benign; a few utterances must be flagged by the default rule pack
(``expect``: category and rule id) and a few are near-misses that must not be (``expect: null``):
they use words the pack's phrases contain ("killed", "casino", "password") in harmless sentences.
``tests/unit/test_sample_room.py`` checks both with the real tiny.en model.

Voices were chosen by what tiny.en transcribes reliably from espeak-ng: note that espeak-ng 1.51
silently ignores ``+variant`` on ``en-gb`` (use ``en``, which is British English), and that its
female variants (``+f1``..``+f5``) are transcribed far worse than the male ones, so the speakers
differ by voice, accent and pitch instead.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
_MS = SAMPLE_RATE // 1000
ROOM_ID = "sample-room"
OUT_DIR = Path(__file__).parent

LEAD_IN_S = 1.0
"""Silence before the first utterance."""
GAP_S = 0.9
"""Silence between one utterance and the next (any speakers)."""
MIN_SAME_SPEAKER_GAP_S = 1.2
"""Silence a speaker keeps between their own utterances, so the VAD closes each segment."""
TAIL_S = 1.2
"""Silence after the last utterance."""
PEAK = 0.5
"""Every clip is scaled to this peak (-6 dBFS), so the speakers are equally loud."""
EDGE_THRESHOLD = 0.01
"""Leading/trailing samples quieter than this (relative to full scale) are trimmed off a clip."""


@dataclass(frozen=True)
class Voice:
    espeak: str
    pitch: int
    speed: int = 160  # words per minute


VOICES: dict[str, Voice] = {
    "alice": Voice("en", pitch=70),  # British English, higher pitch: the room's host
    "bob": Voice("en-us+m3", pitch=50),  # American English
    "carol": Voice("en+m1", pitch=60),  # British English, another timbre
}


@dataclass(frozen=True)
class Line:
    speaker: str
    text: str
    expect: tuple[str, str] | None = None  # (category, rule_id) the default pack must raise


NEAR_MISS = None

SCRIPT: tuple[Line, ...] = (
    Line("alice", "Welcome everyone to the Friday evening room."),
    Line("bob", "Hey Alice, thanks for having us tonight."),
    Line("carol", "Hi everyone, happy to be here."),
    Line("alice", "How was your week?"),
    Line("bob", "Pretty good. I killed it at the gym today.", NEAR_MISS),
    Line("carol", "Did anyone watch the football game last night?"),
    Line("bob", "Yes, what a match. The last goal was amazing."),
    Line("alice", "I watched a movie instead. The casino scene in that film was great.",
         NEAR_MISS),
    Line("carol", "Use my casino bonus code for free spins.",
         ("gambling", "gambling.casino_bonus_code")),
    Line("alice", "Let's keep promotions out of this room, please."),
    Line("bob", "Shut up loser, nobody asked you.", ("abuse", "abuse.shut_up_loser")),
    Line("alice", "Please be respectful."),
    Line("carol", "Just send me your password and I will fix your account.",
         ("fraud", "fraud.send_me_your_password")),
    Line("alice", "Please never share your password with anyone.", NEAR_MISS),
    Line("bob", "I know where you live.", ("violence", "violence.i_know_where_you_live")),
    Line("carol", "I am selling cocaine after the show.", ("drugs", "drugs.selling_cocaine")),
    Line("bob", "I would kill for a coffee right now.", NEAR_MISS),
    Line("alice", "Okay, thanks everyone. See you next week."),
)


def _espeak_exe() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng not found (apt-get install espeak-ng)")
    return exe


def espeak_version() -> str:
    """e.g. ``1.51``: output is byte-identical only for the same espeak-ng build."""
    out = subprocess.run([_espeak_exe(), "--version"], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"text-to-speech:\s*(\S+)", out)
    return match.group(1) if match else out.strip()


def espeak(text: str, voice: Voice) -> np.ndarray:
    """Speak ``text``; returns float64 samples at :data:`SAMPLE_RATE`, trimmed and levelled."""
    exe = _espeak_exe()
    wav = subprocess.run(
        [exe, "-v", voice.espeak, "-p", str(voice.pitch), "-s", str(voice.speed), "--stdout",
         text],
        capture_output=True, check=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit("unexpected espeak-ng output format")
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    y = resample(x, rate, SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(y) > EDGE_THRESHOLD)
    if loud.size == 0:
        raise SystemExit(f"espeak-ng produced silence for {text!r}")
    y = y[loud[0] : loud[-1] + 1]
    y = np.pad(y, (0, -len(y) % _MS))  # whole milliseconds: room.json times are exact
    return y * (PEAK / np.max(np.abs(y)))


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of a short clip by zero-padding/truncating its spectrum."""
    if rate_in == rate_out:
        return x
    n = len(x)
    m = round(n * rate_out / rate_in)
    spectrum = np.fft.rfft(x)
    out = np.zeros(m // 2 + 1, dtype=complex)
    k = min(len(spectrum), len(out))
    out[:k] = spectrum[:k]
    return np.fft.irfft(out, m) * (m / n)


def to_pcm(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()


def build(script: tuple[Line, ...] = SCRIPT) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Lay the script out on one timeline; returns each speaker's track and the utterances."""
    clips = [espeak(line.text, VOICES[line.speaker]) for line in script]
    placed: list[tuple[Line, int, np.ndarray]] = []
    last_end: dict[str, int] = {}
    t = round(LEAD_IN_S * SAMPLE_RATE)
    for i, (line, clip) in enumerate(zip(script, clips, strict=True)):
        if i:
            t += round(GAP_S * SAMPLE_RATE)
        if line.speaker in last_end:  # keep a speaker's own pauses long enough for the VAD
            t = max(t, last_end[line.speaker] + round(MIN_SAME_SPEAKER_GAP_S * SAMPLE_RATE))
        assert t % _MS == 0 and len(clip) % _MS == 0
        placed.append((line, t, clip))
        t += len(clip)
        last_end[line.speaker] = t
    total = t + round(TAIL_S * SAMPLE_RATE)
    tracks = {name: np.zeros(total) for name in VOICES}
    utterances = []
    for line, start, clip in placed:
        tracks[line.speaker][start : start + len(clip)] = clip
        utterances.append({
            "speaker": line.speaker,
            "text": line.text,
            "start_s": start / SAMPLE_RATE,  # exact: whole milliseconds
            "end_s": (start + len(clip)) / SAMPLE_RATE,
            "expect": ({"category": line.expect[0], "rule_id": line.expect[1]}
                       if line.expect else None),
        })
    return tracks, utterances


def write(out_dir: Path = OUT_DIR) -> Path:
    tracks, utterances = build()
    speakers = {}
    for name, track in tracks.items():
        path = out_dir / f"speaker_{name}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(to_pcm(track))
        speakers[name] = path.name
    duration = len(next(iter(tracks.values()))) / SAMPLE_RATE
    room = {
        "room_id": ROOM_ID,
        "sample_rate": SAMPLE_RATE,
        "duration_s": duration,
        "speakers": speakers,
        "voices": {name: {"espeak": v.espeak, "pitch": v.pitch, "speed": v.speed}
                   for name, v in VOICES.items()},
        "generator": "python -m roomwarden.samples.synthesize",
        "espeak_ng_version": espeak_version(),
        "utterances": utterances,
    }
    room_path = out_dir / "room.json"
    room_path.write_text(json.dumps(room, indent=2) + "\n")
    return room_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    room_path = write(args.out)
    room = json.loads(room_path.read_text())
    flagged = sum(1 for u in room["utterances"] if u["expect"])
    print(f"wrote {room_path} and {len(room['speakers'])} speaker files: "
          f"{room['duration_s']:.1f} s, {len(room['utterances'])} utterances, {flagged} flagged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
