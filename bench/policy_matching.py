"""Policy matching throughput: transcripts/second per core with a 20,000-term pack.

The pack is generated at run time (never stored) from the keyword lists in
``../shared/evaldata/keywords`` (LDNOOBW en/zh, CC BY 4.0; konsheng Sensitive-lexicon, MIT),
topped up with generated English phrases (everyday words around a listed keyword), half English,
half Chinese; terms of one character are dropped (no real pack lists one: the lists' few are
regex leftovers that normalize to a lone ``我``, "I", which would flag nearly every Chinese
sentence). The corpus is generated everyday sentences (3/4 English, 1/4 Chinese; 1 in 20 with a
pack term appended). Measured in the same run:

* ``TermIndex.find`` -- the engine's full path: normalization + every evasion layer + match.
* baseline -- one compiled ``re`` alternation of all normalized terms, word-bounded, over the same
  normalized text (``normalize_text``), i.e. a naive implementation of the same exact matching.
  It misses what the other layers add (leet ``l``->``i`` variants, repeated letters, pinyin
  sound-alikes) and gives no offsets in the original text; it is timed on the first 2000
  transcripts (it is slow).

Rates are transcripts per CPU-second of this process (``time.process_time``), best of 5 (the
machine is shared): the matcher runs on one thread, so that is one core.

Run: ``python -m bench.policy_matching [--out bench/RESULTS.md]`` (also ``bench.run --suite
policy``). Goal (issue 5): >= 100k transcripts/s and >= 20x the baseline.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

from bench.sections import replace_section
from policy.normalize import normalize_term, normalize_text
from policy.term_index import TermIndex

KEYWORDS = Path(__file__).resolve().parents[2] / "shared" / "evaldata" / "keywords"
HEADING = "## Policy matching"
TERMS = 20_000

_EN_WORDS = ("the a you i will to and of is it that in was for on are with they be at one have "
             "this from or by but what some we can out other were all there when up use your how "
             "said each she which do their time if go send me money code free join group sell "
             "buy now tonight here room stream music game play team talk later").split()
_ZH_CHUNKS = ("我们 今天 天气 真好 大家 一起 去 吃饭 你 他 说 这个 问题 没有 时候 工作 学习 "
              "朋友 音乐 游戏 直播 房间 晚上 明天 老师 学生 喜欢 看 电影 新闻").split()


@dataclass(frozen=True, slots=True)
class _Term:
    term: str
    normalized: str


def load_terms(n: int = TERMS, seed: int = 5) -> list[_Term]:
    rnd = random.Random(seed)
    en: list[str] = []
    zh: list[str] = []
    for path in sorted(KEYWORDS.rglob("*.txt")):
        if "LICENSE" in path.name or "PROVENANCE" in path.name or "stopword" in path.name:
            continue
        for line in path.read_text(encoding="utf-8", errors="ignore").splitlines():
            t = line.strip()
            if 2 <= len(t) <= 20:
                (zh if any("\u4e00" <= c <= "\u9fff" for c in t) else en).append(t)
    rnd.shuffle(zh)
    terms = list(dict.fromkeys(en))[: n // 4]
    keywords = en[:400]
    while len(terms) < n // 2:
        # Generated English phrases, like the default pack's: everyday words around at least
        # one listed keyword ("sell <keyword> now"). A phrase of everyday words alone ("have
        # to", "all said") is no rule anyone would write; it would flag most English speech.
        words = [rnd.choice(_EN_WORDS) for _ in range(rnd.randint(1, 3))]
        words.insert(rnd.randint(0, len(words)), rnd.choice(keywords))
        terms.append(" ".join(words))
    terms += zh
    out: dict[str, _Term] = {}
    for t in terms:
        nt = normalize_term(t)
        # One character alone is no term a real pack lists: it is a word fragment that hits
        # nearly every sentence (the lists hold a few regex leftovers such as "\\+·我" -> 我, "I").
        if len(nt.replace(" ", "")) >= 2 and nt not in out:
            out[nt] = _Term(t, nt)
        if len(out) == n:
            break
    return list(out.values())


def corpus(terms: list[_Term], n: int = 20_000, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            text = "".join(rnd.choice(_ZH_CHUNKS) for _ in range(rnd.randint(6, 14)))
        else:
            words = [rnd.choice(_EN_WORDS) for _ in range(rnd.randint(6, 18))]
            text = " ".join(words).capitalize() + rnd.choice([".", "?", "!", ","])
        if i % 20 == 0:  # a term now and then
            text += " " + rnd.choice(terms).term
        out.append(text)
    return out


def _rate(fn, texts: list[str], repeat: int = 5) -> tuple[float, int]:
    """Best of ``repeat`` runs (the machine is shared), in transcripts per CPU-second of this
    process: the matcher is single-threaded, so that is the rate of one core."""
    best = 0.0
    hits = 0
    for _ in range(repeat):
        t0 = time.process_time()
        hits = sum(len(fn(t)) for t in texts)
        best = max(best, len(texts) / (time.process_time() - t0))
    return best, hits


def run() -> str:
    terms = load_terms()
    texts = corpus(terms)
    t0 = time.process_time()
    index = TermIndex(terms)
    build_s = time.process_time() - t0
    alternation = "|".join(re.escape(t.normalized) for t in
                           sorted(terms, key=lambda t: len(t.normalized), reverse=True))
    baseline = re.compile(rf"(?<![^\W_])(?:{alternation})(?![^\W_])")
    index.find(texts[0])
    fast, hits = _rate(index.find, texts)
    en = [t for t in texts if t.isascii()]
    zh = [t for t in texts if not t.isascii()]
    fast_en, _ = _rate(index.find, en)
    fast_zh, _ = _rate(index.find, zh)
    with_term = texts[::20]
    fast_term, _ = _rate(index.find, with_term)
    sample = texts[:2000]
    base, base_hits = _rate(lambda t: baseline.findall(normalize_text(t)), sample, repeat=1)
    n_zh = sum(any("\u4e00" <= c <= "\u9fff" for c in t.normalized) for t in terms)
    lines = [HEADING, "",
             f"{len(terms)} terms ({len(terms) - n_zh} English: keyword lists + generated "
             f"phrases around a keyword; {n_zh} Chinese: keyword lists; terms of one character "
             f"dropped), built in {build_s:.1f} s; {len(texts)} generated transcripts (3/4 "
             "English, 1/4 Chinese, 1 in 20 with a term). One core: single thread, process CPU "
             "time, best of 5 (shared machine: runs vary by up to ~20%). Baseline: every "
             "normalized term in one compiled `re` alternation, word-bounded, over the same "
             "`normalize_text` output (what a naive implementation "
             "does; it finds only exact/normalized matches: no leet `l`->`i`, fuzzy, pinyin or "
             "original offsets). Command: `python -m bench.policy_matching --out "
             "bench/RESULTS.md`.", "",
             "| path | transcripts/s per core | matches | vs baseline |", "|---|---:|---:|---:|",
             f"| TermIndex.find (all layers), all | {fast:,.0f} | {hits} | {fast / base:.0f}x |",
             f"| TermIndex.find, English only | {fast_en:,.0f} | | |",
             f"| TermIndex.find, Chinese only | {fast_zh:,.0f} | | |",
             f"| TermIndex.find, only transcripts with a term | {fast_term:,.0f} | | |",
             f"| baseline: one `re` alternation (first {len(sample)}) | {base:,.0f} | "
             f"{base_hits} | 1x |"]
    section = "\n".join(lines)
    print(section, flush=True)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="write the section into this RESULTS.md")
    args = parser.parse_args()
    section = run()
    if args.out:
        old = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(replace_section(old, section, HEADING))


if __name__ == "__main__":
    main()
