"""The accuracy benchmark's reference handling, normalisation, scoring and tables (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.accuracy import decode_configs
from bench.accuracy_metrics import (
    Clip,
    ClipResult,
    DecodeConfig,
    EvalDataError,
    error_rate,
    extract_section,
    load_clips,
    normalize,
    normalize_en,
    normalize_zh,
    replace_section,
    source_table,
    summarize,
    summary_table,
)

# -- normalisation ---------------------------------------------------------------------------


def test_english_case_punctuation_and_hyphens() -> None:
    assert normalize_en("And so, my fellow Americans: ask NOT!") == \
        "and so my fellow americans ask not"
    assert normalize_en("rather cold-hearted") == "rather cold hearted"
    assert normalize_en('the "lower-case"  being') == "the lower case being"


def test_english_numbers_spelling_and_contractions_match_either_way() -> None:
    # LJSpeech spells numbers out, Whisper writes digits: both sides must meet.
    assert normalize_en("about fourteen fifty-five,") == normalize_en("about 1455")
    assert normalize_en("the colour") == normalize_en("the color")
    assert normalize_en("So what's interesting") == "so what is interesting"


def test_english_drops_tokens_without_letters_or_digits() -> None:
    assert normalize_en("natural there for...") == "natural there for"
    assert normalize_en("it was 3.5 percent.") == "it was 3.5%"


def test_chinese_traditional_to_simplified_punctuation_and_width() -> None:
    assert normalize_zh("請說出您要撥打的號碼。") == "请说出您要拨打的号码"
    assert normalize_zh("別緊張, 我只是 逛街.") == "别紧张我只是逛街"
    # Full-width digits and Latin letters become half-width; Latin is lowercased.
    assert normalize_zh("左边是８号线，ＯＫ！") == "左边是8号线ok"
    assert normalize_zh("he must be home 他一定在家") == "hemustbehome他一定在家"


def test_chinese_numbers_are_not_converted() -> None:
    assert normalize_zh("8号线") != normalize_zh("八号线")


def test_normalize_refuses_unknown_language() -> None:
    with pytest.raises(ValueError, match="'fr'"):
        normalize("bonjour", "fr")


# -- scoring ---------------------------------------------------------------------------------


def test_english_wer_is_corpus_level_over_normalised_words() -> None:
    # 1 substitution in 4 words + 0 errors in 1 word = 1/5, not the mean of 1/4 and 0.
    refs = ["Go forward, ten meters.", "Hello"]
    hyps = ["go forward 10 metres", "hello!"]  # only normalisation differences ...
    assert error_rate("en", refs, hyps) == 0.0
    assert error_rate("en", refs, ["go backward 10 meters", "hello"]) == pytest.approx(1 / 5)


def test_chinese_cer_over_characters_after_simplification() -> None:
    assert error_rate("zh", ["欢迎大家来体验"], ["歡迎大家來體驗。"]) == 0.0
    assert error_rate("zh", ["砸自己的脚"], ["砸自己脚"]) == pytest.approx(1 / 5)
    assert error_rate("zh", ["砸自己的脚"], [""]) == 1.0


# -- reading refs.tsv ------------------------------------------------------------------------


def _write(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("utt_id\tfile\treference\tref_type\tnotes\n" + "".join(r + "\n" for r in rows),
                    encoding="utf-8")


def test_load_clips_keeps_real_references_and_lists_the_rest(tmp_path: Path) -> None:
    en = tmp_path / "en_speech" / "demo"
    for name in ("a.wav", "stereo.wav", "b_converted.wav", "weak.wav", "sub/c.wav"):
        (en / name).parent.mkdir(parents=True, exist_ok=True)
        (en / name).write_bytes(b"")
    _write(en / "refs.tsv", [
        'a\ta.wav\tThe "quoted" text.\thuman_ground_truth\t',
        "left\tstereo.wav (channel 1/left)\tleft words\texpected_output_in_upstream_tests\t",
        "right\tstereo.wav (channel 2/right)\tright words\texpected_output_in_upstream_tests\t",
        "b\tb.raw (also b_converted.wav)\tgo forward\texpected_output_in_upstream_tests\t",
        "weak\tweak.wav\tHello.\tmodel_output_in_upstream_readme\t",
        "c\tsub/c.wav\tten of clubs\thuman_ground_truth\t",
    ])
    clips, excluded = load_clips(tmp_path, ["en"])
    by_id = {c.utt_id: c for c in clips}
    assert list(by_id) == ["a", "left", "right", "b", "c"]
    assert by_id["a"].reference == 'The "quoted" text.'  # quotes kept verbatim (QUOTE_NONE)
    assert (by_id["left"].channel, by_id["right"].channel, by_id["a"].channel) == (0, 1, None)
    assert by_id["b"].path == en / "b_converted.wav"  # PyAV cannot read headerless .raw
    assert by_id["c"].source == "en_speech/demo/sub"
    assert by_id["a"].source == "en_speech/demo"
    assert [(e.utt_id, e.ref_type) for e in excluded] == [
        ("weak", "model_output_in_upstream_readme")]


def test_load_clips_names_a_missing_audio_file(tmp_path: Path) -> None:
    _write(tmp_path / "zh_speech" / "x" / "refs.tsv",
           ["u\tgone.wav\t你好\tground_truth_from_docs\t"])
    with pytest.raises(EvalDataError, match=r"refs.tsv:2: audio file .*gone.wav does not exist"):
        load_clips(tmp_path, ["zh"])


def test_load_clips_refuses_an_empty_reference(tmp_path: Path) -> None:
    folder = tmp_path / "zh_speech" / "x"
    _write(folder / "refs.tsv", ["u\tu.wav\t。。\tground_truth_from_docs\t"])
    (folder / "u.wav").write_bytes(b"")
    with pytest.raises(EvalDataError, match="'u' is empty after normalisation"):
        load_clips(tmp_path, ["zh"])


def test_load_clips_refuses_unknown_language_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="unknown language 'fr'"):
        load_clips(tmp_path, ["fr"])
    with pytest.raises(EvalDataError, match="en_speech does not exist"):
        load_clips(tmp_path, ["en"])


# -- configurations and tables ---------------------------------------------------------------


def test_decode_configs_give_english_only_models_no_mandarin_rows() -> None:
    labels = [c.label for c in decode_configs(["tiny.en", "base"], ["int8"], ["en", "zh"])]
    assert labels == ["tiny.en int8 en (hint en)", "base int8 en (hint en)",
                      "base int8 zh (hint zh)", "base int8 zh (detect)"]


def _clip(utt: str, lang: str, ref: str, source: str = "s") -> Clip:
    return Clip(utt, lang, source, Path(f"/x/{utt}.wav"), None, ref, "human_ground_truth")


def _result(clip: Clip, text: str, *, raw: str | None = None, cls: str = "confident",
            language: str = "zh") -> ClipResult:
    return ClipResult(clip, text, text if raw is None else raw, cls, (), language, 10.0, 2.0, 1.0)


def test_summary_counts_guards_language_and_speed() -> None:
    config = DecodeConfig("base", "int8", "zh", None)
    results = [
        _result(_clip("a", "zh", "你好世界"), "你好世界"),
        _result(_clip("b", "zh", "砸自己的脚"), "", raw="砸自己的脚", cls="rejected",
                language="en"),
        _result(_clip("c", "zh", "欢迎"), "欢迎", cls="low"),
    ]
    s = summarize(config, results)
    assert (s.clips, s.low, s.rejected, s.guard_edited, s.language_correct) == (3, 1, 1, 1, 2)
    assert s.error_rate == pytest.approx(5 / 11)
    assert s.raw_error_rate == 0.0
    assert (s.audio_per_cpu_s, s.realtime_factor) == (5.0, 10.0)
    header, rule, row = summary_table([s])
    assert header.count("|") == rule.count("|") == row.count("|")
    assert row == ("| base | int8 | zh | detect | 3 | 30.0 | CER | 45.5 % | 0.0 % | 1 / 1 / 1 "
                   "| 2/3 | 5.00 | 10.0 |")


def test_summary_table_hides_language_accuracy_when_hinted() -> None:
    config = DecodeConfig("tiny.en", "float32", "en", "en")
    s = summarize(config, [_result(_clip("a", "en", "red fox"), "red box", language="en")])
    row = summary_table([s])[2]
    assert "| hint en |" in row and "| WER | 50.0 % |" in row and "| - |" in row


def test_source_table_one_row_per_folder_one_column_per_config() -> None:
    int8 = DecodeConfig("base", "int8", "en", "en")
    f32 = DecodeConfig("base", "float32", "en", "en")
    zh = DecodeConfig("base", "int8", "zh", "zh")
    a, b = _clip("a", "en", "ten of clubs", "cards"), _clip("b", "en", "go forward", "robot")
    results = {int8: [_result(a, "ten of clothes"), _result(b, "go forward")],
               f32: [_result(a, "ten of clubs"), _result(b, "go")],
               zh: [_result(_clip("z", "zh", "你好"), "你好")]}
    lines = source_table(results, "en")
    assert lines[0] == ("| WER by source | clips | base int8 en (hint en) "
                        "| base float32 en (hint en) |")
    assert lines[2:] == ["| cards | 1 | 33.3 % | 0.0 % |", "| robot | 1 | 0.0 % | 50.0 % |"]
    assert source_table({}, "zh") == []


# -- RESULTS.md section ----------------------------------------------------------------------

DOC = "# Benchmark results\n\nheader\n\n## ASR throughput\n\nrows\n\n## Latency\n\nmore rows\n"


def test_replace_section_appends_then_replaces_in_place() -> None:
    first = replace_section(DOC, "## ASR accuracy (x)\n\nold table\n")
    assert first == DOC + "\n## ASR accuracy (x)\n\nold table\n"
    moved = first.replace("## Latency\n\nmore rows\n\n", "") + "\n## Latency\n\nmore rows\n"
    second = replace_section(moved, "## ASR accuracy (y)\n\nnew table\n")
    assert "old table" not in second
    assert second.index("## ASR accuracy (y)") < second.index("## Latency")
    assert second.startswith("# Benchmark results\n\nheader\n\n## ASR throughput\n\nrows\n\n")
    assert second.endswith("new table\n\n## Latency\n\nmore rows\n")
    assert extract_section(second) == "## ASR accuracy (y)\n\nnew table\n"
    assert extract_section(DOC) is None


def test_replace_section_into_an_empty_file_and_bad_section() -> None:
    assert replace_section("", "## ASR accuracy\n\nt") == "## ASR accuracy\n\nt\n"
    with pytest.raises(ValueError, match="must start with"):
        replace_section(DOC, "## Something else\n")
