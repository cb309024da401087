"""The policy text classifier: the shipped artifact (real model), its integrity checks, the
settings loader, and deterministic training on a tiny synthetic dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from policy.classifier import (
    BUILTIN_DIR,
    MANIFEST_FILE,
    ClassifierError,
    ClassifierIntegrityError,
    HashedNgramClassifier,
    load_classifier,
    sha256_file,
)
from policy.classifier_data import LabelledText, clean_tweet
from policy.classifier_features import FeatureParams, has_cjk, hashed_ngrams

ABUSIVE_EN = ["you are a fucking idiot", "shut up you stupid bitch", "fuck you faggot"]
BENIGN_EN = ["thanks everyone for joining the room today",
             "the weather is lovely this afternoon", "let us talk about the new album"]
ABUSIVE_ZH = ["你就是个傻逼，滚出去", "黑人都是垃圾，滚回非洲去", "你妈死了，脑残东西"]
BENIGN_ZH = ["今天天气很好，我们一起去公园散步吧", "谢谢大家来参加今天的讨论", "这本书写得很有意思"]


@pytest.fixture(scope="module")
def builtin() -> HashedNgramClassifier:
    classifier = load_classifier("builtin")
    assert isinstance(classifier, HashedNgramClassifier)
    return classifier


def test_builtin_loads_verified_and_names_itself(builtin: HashedNgramClassifier) -> None:
    assert builtin.model_id.startswith("char-ngram-lr@")
    assert set(builtin.models) == {"en", "zh"}
    manifest = json.loads((BUILTIN_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["training"]["languages"]["en"]["licence"] == "MIT"
    assert manifest["training"]["languages"]["zh"]["licence"] == "Apache-2.0"
    assert sum(p.stat().st_size for p in BUILTIN_DIR.iterdir()) < 5 * 1024 * 1024
    assert (BUILTIN_DIR / "NOTICE").is_file()


@pytest.mark.parametrize("text", ABUSIVE_EN + ABUSIVE_ZH)
def test_clear_abuse_scores_abusive(builtin: HashedNgramClassifier, text: str) -> None:
    out = builtin.score(text)
    assert out.abusive, (text, out)
    assert 0.5 <= out.probability <= 1.0
    assert out.language == ("zh" if has_cjk(text) else "en")
    assert out.model_id == f"{builtin.model_id}/{out.language}"


@pytest.mark.parametrize("text", BENIGN_EN + BENIGN_ZH)
def test_clear_benign_scores_ok(builtin: HashedNgramClassifier, text: str) -> None:
    out = builtin.score(text)
    assert out.label == "ok", (text, out)
    assert 0.0 <= out.probability < 0.5


@pytest.mark.parametrize("text", ["", "   ", "!!!", "a" * 50_000, "混合 mixed 文本"])
def test_probability_is_a_probability_for_odd_input(builtin: HashedNgramClassifier,
                                                    text: str) -> None:
    out = builtin.score(text)
    assert 0.0 <= out.probability <= 1.0


def test_threshold_decides_the_label() -> None:
    strict = load_classifier("builtin", threshold=1.0)
    assert strict is not None
    assert strict.score(ABUSIVE_EN[0]).label == "ok"
    with pytest.raises(ValueError, match="threshold"):
        load_classifier("builtin", threshold=1.5)


def test_none_and_bad_specs() -> None:
    assert load_classifier("none") is None
    assert load_classifier("") is None
    with pytest.raises(ClassifierError, match="neither 'builtin'"):
        load_classifier("/no/such/dir")


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    shutil.copytree(BUILTIN_DIR, directory)
    return directory


def test_a_copied_artifact_loads_by_path_and_pin(artifact_copy: Path) -> None:
    pin = sha256_file(artifact_copy / MANIFEST_FILE)
    loaded = load_classifier(str(artifact_copy), expected_sha256=pin)
    assert loaded is not None and loaded.score(ABUSIVE_EN[0]).abusive


def test_tampered_weights_are_refused(artifact_copy: Path) -> None:
    path = artifact_copy / "weights_en.npy"
    data = bytearray(path.read_bytes())
    data[-4:] = np.float32(9.0).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(ClassifierIntegrityError, match="weights_en.npy has sha256"):
        load_classifier(str(artifact_copy))


def test_tampered_manifest_is_refused_against_its_pin(artifact_copy: Path) -> None:
    pin = sha256_file(artifact_copy / MANIFEST_FILE)
    manifest_path = artifact_copy / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["models"]["en"]["calibration"]["b"] = 50.0  # everything would be "abusive"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ClassifierIntegrityError, match="refusing to load"):
        load_classifier(str(artifact_copy), expected_sha256=pin)


def test_malformed_manifest_names_the_field(artifact_copy: Path) -> None:
    manifest_path = artifact_copy / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["models"]["zh"]["intercept"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ClassifierError, match="missing field 'intercept'"):
        load_classifier(str(artifact_copy))
    manifest_path.write_text(json.dumps({"format": "other/9"}), encoding="utf-8")
    with pytest.raises(ClassifierError, match="format is 'other/9'"):
        load_classifier(str(artifact_copy))


def test_a_pickle_in_place_of_weights_is_not_loaded(artifact_copy: Path) -> None:
    path = artifact_copy / "weights_en.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    manifest_path = artifact_copy / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["models"]["en"]["weights_sha256"] = sha256_file(path)  # an attacker re-pins it
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ClassifierError, match="not a plain .npy array"):
        load_classifier(str(artifact_copy))


def test_features_are_stable_and_normalized() -> None:
    params = FeatureParams(hash_bits=12)
    index, values = hashed_ngrams("Ｈｅｌｌｏ,   WORLD!", params)
    again, _ = hashed_ngrams("hello world", params)
    assert np.array_equal(index, again)  # NFKC + casefold + punctuation folded
    assert np.all(np.diff(index) > 0) and index.max() < 4096
    assert np.isclose(float(np.dot(values, values)), 1.0)
    assert hashed_ngrams("?!", params)[0].size == 0


def test_clean_tweet_drops_twitter_debris() -> None:
    assert clean_tweet("RT @user: so &amp; #blessed http://t.co/x") == "so & blessed"


def test_training_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from policy.train_classifier import fit_language_model, write_artifact

    rng = np.random.default_rng(0)
    bad, good = ["idiot", "moron", "trash"], ["friend", "music", "coffee"]
    rows = [LabelledText(f"you {rng.choice(bad if k % 2 else good)} {k}", bool(k % 2))
            for k in range(120)]
    params = FeatureParams(hash_bits=12)
    first, chosen = fit_language_model("en", rows[:90], rows[90:], params, c_grid=(1.0, 4.0))
    second, _ = fit_language_model("en", rows[:90], rows[90:], params, c_grid=(1.0, 4.0))
    assert np.array_equal(first.weights, second.weights)
    assert (first.intercept, first.calib_a, first.calib_b) == (
        second.intercept, second.calib_a, second.calib_b)
    assert chosen["C"] in (1.0, 4.0)
    sha = write_artifact(tmp_path / "tiny", params, {"en": first}, {"note": "synthetic"})
    loaded = load_classifier(str(tmp_path / "tiny"), expected_sha256=sha)
    assert loaded is not None
    assert loaded.score("you idiot").probability > loaded.score("you coffee").probability
