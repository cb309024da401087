"""Audit store throughput: appends/s, and export + verify time for a 10,000-record room.

Measured in the same run, on a SQLite file in ``--dir`` (default: the system temp directory;
point it at the disk the audit database will live on -- fsync cost is the disk's):

* appends with ``synchronous=FULL`` (what the store uses: every commit fsyncs the WAL) against
  the in-run baseline ``synchronous=NORMAL`` (WAL fsynced only at checkpoints: faster, but a
  power cut can lose the last commits), each as batches of 1 entry (one Kafka record per
  transaction: the worst case) and of 100 (the recorder appends a whole poll per transaction);
  rates are entries per wall second, each the best of ``--repeat`` runs (the machine is shared);
* with ``--postgres URL``, the same appends on PostgreSQL (in a throw-away schema);
* a room of 10,000 records (alert-sized data, 1 in 50 an evidence entry with a 1 s WAV)
  exported as a .tar.gz bundle (build + write) and verified (read + verify), in seconds.

The research bar (``shared/research/reliability_security.md`` section 4, L6) is >= 1,750
appends/s on one core (Crosby & Wallach's tree log).

Run: ``python -m bench.audit_store [--dir D] [--repeat 3] [--postgres URL]``. Prints a markdown
table; it does not write ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.audit import AuditEntry, AuditStore, SigningKey, open_store
from alerts.audit.export import build_bundle
from alerts.audit.sqlite_store import SqliteAuditStore
from alerts.audit.verify import verify_bundle

RECORDS = 10_000
WAV_1S = b"RIFF" + bytes(32_040)  # a 16 kHz mono s16 second, as far as size goes
PACK = {"name": "default", "version": "2026.11.3", "sha256": "a" * 64}


def alert_data(i: int) -> dict[str, Any]:
    """About the size and shape of a real alert event's data (~900 bytes of JSON)."""
    return {
        "alert_id": str(uuid.UUID(int=i)), "room_id": "bench-room", "speaker_id": f"s{i % 7}",
        "speaker_name": "Speaker Name", "segment_id": f"{i:032x}", "transcript_id": f"{i:040x}",
        "category": "abuse.insult", "severity": "high", "suggestion": "review",
        "rule_id": "insult.generic", "match": {"start": 10, "end": 15, "text": "idiot",
                                               "kind": "exact"},
        "text": "well you are an idiot and everyone in this room knows it, honestly",
        "confidence": 0.91, "confidence_class": "confident", "language": "en",
        "model_id": "tiny.en-int8", "policy": PACK,
        "speech": {"start_offset_s": i * 2.0, "end_offset_s": i * 2.0 + 1.5,
                   "start_time": "2026-11-21T20:13:00.000Z",
                   "end_time": "2026-11-21T20:13:01.500Z"},
        "detected_at": "2026-11-21T20:13:01.900Z"}


def entries(start: int, count: int, *, evidence_every: int = 0) -> list[AuditEntry]:
    out = []
    for i in range(start, start + count):
        if evidence_every and i % evidence_every == 0:
            out.append(AuditEntry("bench-room", "evidence", f"seg-{i}", 1.8e9 + i,
                                  {"segment_id": f"seg-{i}", "sample_rate": 16000,
                                   "format": "wav"}, blob=WAV_1S[:-8] + i.to_bytes(8, "big")))
        else:
            out.append(AuditEntry("bench-room", "alert", f"alert-{i}", 1.8e9 + i, alert_data(i)))
    return out


def appends_per_s(make: Callable[[], AuditStore], batch: int, total: int, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        store = make()
        batches = [entries(i, batch) for i in range(0, total, batch)]
        started = time.perf_counter()
        for chunk in batches:
            store.append(chunk)
        elapsed = time.perf_counter() - started
        store.close()
        best = max(best, total / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=None, help="postgresql:// URL (optional)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="audit-bench-", dir=args.dir))
    key = SigningKey.generate()
    counter = iter(range(1_000_000))

    def sqlite(synchronous: str) -> Callable[[], AuditStore]:
        return lambda: SqliteAuditStore(str(root / f"bench-{next(counter)}.db"), key=key,
                                        synchronous=synchronous)

    rows: list[tuple[str, str, float]] = []
    for batch, total in ((1, 500), (100, 5000)):
        full = appends_per_s(sqlite("FULL"), batch, total, args.repeat)
        normal = appends_per_s(sqlite("NORMAL"), batch, total, args.repeat)
        rows.append((f"SQLite, batch {batch}", "synchronous=FULL (used)", full))
        rows.append((f"SQLite, batch {batch}", "synchronous=NORMAL (baseline)", normal))
        if args.postgres:
            import psycopg
            schema = f"audit_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            sep = "&" if "?" in args.postgres else "?"
            url = f"{args.postgres}{sep}options=-csearch_path%3D{schema}"
            made: list[AuditStore] = []

            def pg(url: str = url, made: list[AuditStore] = made) -> AuditStore:
                store = open_store(url, key=key)
                if made:  # a fresh room per run: drop the previous run's rows
                    with store._write() as tx:
                        tx.execute("DELETE FROM audit_entries")
                        tx.execute("DELETE FROM audit_rooms")
                made.append(store)
                return store

            rows.append((f"PostgreSQL, batch {batch}", "synchronous_commit=on",
                         appends_per_s(pg, batch, total, args.repeat)))
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    store = SqliteAuditStore(str(root / "export.db"), key=key)
    for start in range(0, RECORDS, 100):
        store.append(entries(start, 100, evidence_every=50))
    started = time.perf_counter()
    bundle = build_bundle(store, "bench-room", fmt="jsonl")
    path = bundle.write(root / "bundle.tar.gz")
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    result = verify_bundle(path)
    verify_s = time.perf_counter() - started
    assert result.ok and result.records == RECORDS, result.problem
    size_mb = path.stat().st_size / 1e6
    store.close()
    shutil.rmtree(root)

    print(f"## Audit store\n\nSQLite in {root.parent}, {args.repeat} runs, best; "
          "entries of ~0.9 KB JSON.\n")
    print("| store | durability | entries/s |\n|---|---|---:|")
    for store_name, durability, rate in rows:
        print(f"| {store_name} | {durability} | {rate:,.0f} |")
    for batch in (1, 100):
        full = next(r for n, d, r in rows if n == f"SQLite, batch {batch}" and "FULL" in d)
        normal = next(r for n, d, r in rows if n == f"SQLite, batch {batch}" and "NORMAL" in d)
        print(f"\nbatch {batch}: FULL / NORMAL = {full / normal:.2f}")
    print(f"\nexport {RECORDS:,} records ({RECORDS // 50} clips, {size_mb:.1f} MB .tar.gz): "
          f"{export_s:.2f} s; verify: {verify_s:.2f} s "
          f"({RECORDS / verify_s:,.0f} records/s)")


if __name__ == "__main__":
    main()
