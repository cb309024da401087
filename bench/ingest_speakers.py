"""Simulated speakers for the ingest benchmark, run as a process of their own.

    python -m bench.ingest_speakers janus URL ROOM CLIP [CLIP ...] --count N --ice-host ADDR
    python -m bench.ingest_speakers whip URL CLIP [CLIP ...] --count N --ice-host 127.0.0.1

Speaker ``i`` plays ``CLIP[i % len(CLIP)]`` in real time into a Janus VideoRoom
(:func:`ingest.janus_publisher.publish_file_to_videoroom`) or to the WHIP endpoint
``URL/whip/bench/s<i>`` (:func:`ingest.whip_client.publish_file`). Publishing from a separate
process keeps the publishers' Opus encoding (and aiortc's pure-Python audio-level computation)
out of the CPU time the benchmark charges to the receiving side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from ingest.errors import IngestError
from ingest.ice import restrict_host_addresses
from ingest.janus_publisher import publish_file_to_videoroom
from ingest.whip_client import publish_file
from roomwarden.logs import configure_logging

STAGGER_S = 0.05
"""Delay between speakers' starts: real rooms do not connect everyone in the same millisecond,
and it spreads the ICE/DTLS handshakes."""


async def run(mode: str, url: str, room: int, clips: list[Path], count: int) -> int:
    """Publish ``count`` speakers at once; return how many failed."""

    async def one(i: int) -> None:
        await asyncio.sleep(STAGGER_S * i)
        clip = clips[i % len(clips)]
        if mode == "janus":
            await publish_file_to_videoroom(url, room, clip, f"speaker {i}",
                                            connect_timeout_s=30.0)
        else:
            await publish_file(f"{url}/whip/bench/s{i}", clip, connect_timeout_s=30.0)

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for exc in failed[:3]:
        print(f"speaker failed: {exc!r}", flush=True)
    return len(failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("janus", "whip"))
    parser.add_argument("url")
    parser.add_argument("rest", nargs="+", help="janus: ROOM CLIP...; whip: CLIP...")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ice-host", required=True, help="the only ICE host address to offer")
    args = parser.parse_args()
    configure_logging("warning")
    restrict_host_addresses([args.ice_host])
    room = int(args.rest.pop(0)) if args.mode == "janus" else 0
    with contextlib.suppress(KeyboardInterrupt):
        try:
            failed = asyncio.run(run(args.mode, args.url, room, [Path(p) for p in args.rest],
                                     args.count))
        except IngestError as exc:
            print(f"speakers failed: {exc}", flush=True)
            raise SystemExit(1) from exc
        raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
