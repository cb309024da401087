"""Run the benchmarks, print the tables, write them as Markdown.

    make bench                     # = python -m bench.run --out bench/RESULTS.md
    python -m bench.run --speakers 1,4,8
    python -m bench.run --suite ingest    (make bench: every suite into bench/RESULTS.md)

Suites: ``asr`` (ASR throughput), ``batching`` (cross-speaker packing at 16 speakers vs
one-at-a-time ``transcribe()``, and 16 live speakers with and without it), ``latency`` (end of
speech -> alert acked), ``ingest`` (ingest cost per speaker stream, Janus VideoRoom tap vs WHIP;
needs root and Janus, see :mod:`bench.ingest_janus`). The default, ``all``, runs all four.
``accuracy`` (WER/CER over ``../shared/evaldata``, :mod:`bench.accuracy`) runs only when asked
for: it decodes for several minutes and rewrites only its own section of ``--out``, which the
other suites keep as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.asr_batching import bench_batching
from bench.asr_throughput import bench_asr
from bench.ingest_janus import bench_ingest, table
from bench.latency import bench_latency, pct
from bench.sections import extract_section, replace_section
from roomwarden.logs import configure_logging
from roomwarden.sample_room import SampleRoom, load_sample_room


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


SUITES = ("asr", "batching", "latency", "ingest", "policy")
ON_REQUEST_SUITES = ("accuracy",)  # not in "all": minutes of decoding; section kept when not run
KEPT_SECTIONS = ("## ASR accuracy", "## Policy classifier", "## Non-speech", "## Audit store")
"""Sections written by on-request benchmarks (``--suite accuracy``, ``python -m
bench.classifier``, ``python -m bench.nonspeech``, ``python -m bench.audit_store``): ``all``
keeps them as they are."""


async def main(speakers: tuple[int, ...], suites: tuple[str, ...] = SUITES,
               ingest_speakers: tuple[int, ...] = (1, 8, 24), ingest_window_s: float = 15.0) -> str:
    room = load_sample_room()
    sections = []
    if "asr" in suites:
        sections.append(await asr_section(room))
    if "batching" in suites:
        section = await bench_batching(speakers=16, live_s=60.0)
        print(section, flush=True)
        sections.append(section)
    if "latency" in suites:
        sections.append(await latency_section(room, speakers))
    if "ingest" in suites:
        sections.append(await ingest_section(ingest_speakers, ingest_window_s))
    if "policy" in suites:
        from bench.policy_matching import run as policy_matching

        sections.append(policy_matching())
    return "\n\n".join(sections)


async def asr_section(room: SampleRoom) -> str:
    lines: list[str] = []
    asr = await bench_asr(room)
    base = asr[0]
    lines += ["## ASR throughput (tiny.en int8, sample-room VAD segments)", "",
              "| decoder | audio s | CPU s | audio s per CPU s | x real time (wall) "
              "| vs baseline |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in asr:
        lines.append(f"| {r.name} | {r.audio_s:.1f} | {r.cpu_s:.2f} | {r.per_cpu_s:.2f} | "
                     f"{r.realtime_factor:.1f} | {r.per_cpu_s / base.per_cpu_s:.2f}x |")
    print("\n".join(lines), flush=True)
    return "\n".join(lines)


async def latency_section(room: SampleRoom, speakers: tuple[int, ...]) -> str:
    floor, results = await bench_latency(room, speakers)
    lat = ["## End of speech -> alert acked by Kafka (WHIP over 127.0.0.1, tansu, acks=all)",
           "", f"Baseline (same run): floor = VAD hangover + idle decode of one utterance = "
           f"{floor:.2f} s.", "",
           "| concurrent speakers | alerts / expected | p50 s (script) | p95 s (script) | "
           "max s | p50 s (metric) | p95 s (metric) | p50 / floor |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lat.append(f"| {r.speakers} | {r.alerts} / {r.expected} | {pct(r.script, 50):.2f} | "
                   f"{pct(r.script, 95):.2f} | {max(r.script, default=float('nan')):.2f} | "
                   f"{pct(r.metric, 50):.2f} | {pct(r.metric, 95):.2f} | "
                   f"{pct(r.script, 50) / floor:.2f}x |")
    print("\n".join(lat), flush=True)
    return "\n".join(lat)


async def ingest_section(counts: tuple[int, ...], window_s: float) -> str:
    load0 = os.getloadavg()[0]
    results = await bench_ingest(counts, window_s)
    load = f"Load average (1 min) at start / end: {load0:.2f} / {os.getloadavg()[0]:.2f}."
    lines = ["## Ingest cost per speaker stream (Janus VideoRoom tap vs WHIP on 127.0.0.1)", "",
             f"Each simulated speaker streams a sample voice (speech and pauses) in real time; "
             f"measured over {window_s:g} s once every stream is up. Receiver = a fresh process "
             f"per row (tap or WHIP endpoint: Opus decode, resampling, VAD); speakers publish from "
             f"another process, Janus runs in a network namespace. Baseline (same run): the "
             f"same speakers publishing straight to our WHIP endpoint. The machine is shared "
             f"(2 cores, other test runs): absolute numbers are noisy, the ratio less so. "
             f"{load}", "",
             *table(results)]
    print("\n".join(lines), flush=True)
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="write the results as Markdown here")
    parser.add_argument("--speakers", default="1,4,8",
                        help="concurrent speaker counts for the latency benchmark")
    parser.add_argument("--suite", choices=("all", *SUITES, *ON_REQUEST_SUITES), default="all",
                        help="run only this benchmark (default: all)")
    parser.add_argument("--ingest-speakers", default="1,8,24",
                        help="speaker counts for the ingest benchmark")
    parser.add_argument("--ingest-window", type=float, default=15.0,
                        help="measured seconds per ingest run")
    args = parser.parse_args()
    configure_logging("warning")
    if args.suite == "accuracy":
        from bench.accuracy import main as accuracy_main

        sys.exit(accuracy_main(["--out", str(args.out)] if args.out else []))
    speakers = tuple(int(s) for s in args.speakers.split(","))
    suites = SUITES if args.suite == "all" else (args.suite,)
    ingest_speakers = tuple(int(s) for s in args.ingest_speakers.split(","))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = asyncio.run(main(speakers, suites, ingest_speakers, args.ingest_window))
    if args.out:
        cmd = "python -m bench.run " + " ".join(sys.argv[1:])
        how = f"`make bench` (`{cmd}`)" if args.suite == "all" else f"`{cmd}`"
        text = (f"# Benchmark results\n\nMachine: {machine()}  \nCommit: {commit()}  \n"
                f"Date: {started}  \nCommand: {how}\n\n{body}\n")
        # Sections of benchmarks run on request (not by "all") are carried over as they are.
        old = args.out.read_text() if args.out.exists() else ""
        for heading in KEPT_SECTIONS:
            kept = extract_section(old, heading)
            if kept:
                text = replace_section(text, kept, heading)
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    cli()
