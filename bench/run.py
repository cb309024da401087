"""Run every benchmark, print the tables, write ``bench/RESULTS.md``.

    make bench                     # = python -m bench.run --out bench/RESULTS.md
    python -m bench.run --speakers 1,4,8
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

from bench.asr_throughput import bench_asr
from bench.latency import bench_latency, pct
from roomwarden.logs import configure_logging
from roomwarden.sample_room import load_sample_room


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


async def main(speakers: tuple[int, ...]) -> str:
    room = load_sample_room()
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

    floor, results = await bench_latency(room, speakers)
    lat = ["", "## End of speech -> alert acked by Kafka (WHIP over 127.0.0.1, tansu, acks=all)",
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
    return "\n".join(lines + lat)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="write the results as Markdown here")
    parser.add_argument("--speakers", default="1,4,8",
                        help="concurrent speaker counts for the latency benchmark")
    args = parser.parse_args()
    configure_logging("warning")
    speakers = tuple(int(s) for s in args.speakers.split(","))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = asyncio.run(main(speakers))
    if args.out:
        cmd = "python -m bench.run " + " ".join(sys.argv[1:])
        args.out.write_text(
            f"# Benchmark results\n\nMachine: {machine()}  \nCommit: {commit()}  \n"
            f"Date: {started}  \nCommand: `make bench` (`{cmd}`)\n\n{body}\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    cli()
