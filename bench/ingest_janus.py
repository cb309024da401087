"""Ingest cost per speaker stream: a Janus VideoRoom tap against the WHIP loopback baseline.

    python -m bench.ingest_janus --speakers 1,8,24 --window 15
    python -m bench.run --suite ingest    (make bench: every suite into bench/RESULTS.md)

For each speaker count (speakers play the sample room's three voices in turn, in real time):

- **janus**: Janus in a network namespace of its own (:mod:`tests.janus_harness`), the speakers
  publishing into one VideoRoom, a :class:`ingest.janus_videoroom.VideoRoomTap` subscribed to
  all of them;
- **whip** (baseline, same run): the speakers publish straight to a
  :class:`ingest.whip.WhipEndpoint` on 127.0.0.1, as ``bench/latency.py`` does.

Both paths end in the same ``StreamSession.pump`` (Opus decode, resampling, VAD), so the ratio
shows what subscribing through Janus costs beyond receiving directly. Each measurement runs in
a child process (:mod:`bench.ingest_probe`); the speakers publish from another process
(:mod:`bench.ingest_speakers`), so the CPU measured is the receiver's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bench.ingest_probe import REPO, IngestResult


async def bench_ingest(counts: tuple[int, ...], window_s: float = 15.0) -> list[IngestResult]:
    """Measure every (count, path) in a child process of its own; baseline first."""
    results = []
    for n in counts:
        for mode in ("whip", "janus"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.ingest_probe", mode, str(n),
                "--window", str(window_s), cwd=REPO, stdout=asyncio.subprocess.PIPE)
            stdout, _ = await proc.communicate()
            line = next((x for x in stdout.decode().splitlines()[::-1]
                         if x.startswith("RESULT ")), None)
            if line is None:
                results.append(IngestResult(mode, n, 0, window_s, 0, 0, 0, 0, 0, None,
                                            f"child exited {proc.returncode} without a result"))
            else:
                results.append(IngestResult(**json.loads(line[len("RESULT "):])))
    return results


def table(results: list[IngestResult]) -> list[str]:
    """Markdown table: one row per (count, path), Janus rows with the ratio to the baseline."""
    base = {r.speakers: r for r in results if r.mode == "whip"}
    lines = ["| speakers | path | streams | stream s | receiver CPU s | CPU s per stream s "
             "| vs WHIP (same run) | RSS growth MiB (per stream) | Janus CPU s per stream s "
             "| publishers CPU s per stream s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        b = base.get(r.speakers)
        ratio = (f"{r.cpu_per_stream_s / b.cpu_per_stream_s:.2f}x"
                 if r.mode == "janus" and b and b.audio_s else "1.00x" if r.mode == "whip" else "-")
        janus = f"{r.janus_cpu_s / r.audio_s:.4f}" if r.janus_cpu_s is not None and r.audio_s \
            else "-"
        per = r.rss_growth_mib / r.streams if r.streams else float("nan")
        pub = r.speakers_cpu_s / r.audio_s if r.audio_s else float("nan")
        lines.append(f"| {r.speakers} | {r.mode} | {r.streams} | {r.audio_s:.0f} | {r.cpu_s:.2f} "
                     f"| {r.cpu_per_stream_s:.4f} | {ratio} | {r.rss_growth_mib:.1f} ({per:.1f}) "
                     f"| {janus} | {pub:.4f} |")
    lines += ["", *_marginal(results)]
    lines += [f"\n{r.mode} x{r.speakers}: {r.error}" for r in results if r.error]
    return lines


def _marginal(results: list[IngestResult]) -> list[str]:
    """Cost of one more stream, from the smallest to the largest count: this leaves out what
    a receiver costs with any number of streams (event loop, HTTP, first codec set-up)."""
    out = []
    for mode in ("whip", "janus"):
        rs = sorted((r for r in results if r.mode == mode and r.streams and not r.error),
                    key=lambda r: r.streams)
        if len(rs) < 2 or rs[-1].audio_s <= rs[0].audio_s:
            continue
        lo, hi = rs[0], rs[-1]
        cpu = (hi.cpu_s - lo.cpu_s) / (hi.audio_s - lo.audio_s)
        rss = (hi.rss_growth_mib - lo.rss_growth_mib) / (hi.streams - lo.streams)
        out.append(f"Marginal per added stream ({mode}, {lo.streams} -> {hi.streams} streams): "
                   f"{cpu:.4f} CPU s per stream s, {rss:.2f} MiB RSS.  ")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speakers", default="1,8,24")
    parser.add_argument("--window", type=float, default=15.0, help="measured seconds")
    args = parser.parse_args()
    counts = tuple(int(s) for s in args.speakers.split(","))
    print("\n".join(table(asyncio.run(bench_ingest(counts, args.window)))))


if __name__ == "__main__":
    main()
