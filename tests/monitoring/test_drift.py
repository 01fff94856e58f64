"""Drift checks: planted shifts are found, identical distributions stay quiet, small windows say so."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pytest

from llmops.errors import InvalidInput
from llmops.monitoring.descriptors import REFERENCE_MODEL_DIR, Vocabulary, describe, repeated_ngram_share, words
from llmops.monitoring.drift import (
    DriftConfig,
    DriftReport,
    Window,
    compare_categorical,
    compare_numeric,
    compare_windows,
    domain_classifier,
    embedding_drift,
    mmd2_permutation_test,
    psi_numeric,
)
from llmops.monitoring.embedding import MiniLMEmbedder
from llmops.monitoring.perplexity import CausalLMPerplexity
from tests.monitoring.conftest import make_window

N = 300
CONFIG = DriftConfig(detect_language=True)


def _json(report: DriftReport) -> str:
    return json.dumps(report.to_dict(), allow_nan=False)  # fails on NaN or infinity


@pytest.fixture(scope="module")
def reference() -> Window:
    return make_window("no_shift", N, seed=1)


# --- descriptors ------------------------------------------------------------------------------------------
def test_words_and_descriptors_of_one_text() -> None:
    assert words("Hello, World! 你好 123 co-op") == ["hello", "world", "你", "好", "co", "op"]
    assert repeated_ngram_share(["a", "b", "c", "a", "b", "c"], 3) == pytest.approx(1 - 3 / 4)
    vocab = Vocabulary.build(["the cat sat"])
    table = describe(["the dog sat sat", "", "!!! 42"], vocabulary=vocab, tokenize=str.split)
    assert table.numeric["length_tokens"].tolist() == [4, 0, 2]
    assert table.numeric["oov_rate"][0] == pytest.approx(1 / 4)  # "dog" of the, dog, sat, sat
    assert table.numeric["new_token_rate"][0] == pytest.approx(1 / 3)  # "dog" of {the, dog, sat}
    assert table.numeric["non_letter_share"].tolist()[1:] == [0.0, 1.0]
    assert table.categorical["script"] == ["Latin", "none", "none"]
    assert table.categorical["language"][1] == "und"


def test_pii_and_refusal_descriptors_count_per_text() -> None:
    vocab = Vocabulary.build([])
    texts = ["mail bob@example.com or ann@example.org", "I'm sorry, but I can't help with that.", "fine"]
    table = describe(texts, vocabulary=vocab, tokenize=str.split, language=False)
    assert table.categorical["pii"] == ["yes", "no", "no"]
    assert table.categorical["refusal"] == ["no", "yes", "no"]
    assert table.pii_by_type == {"EMAIL": 2}


def test_repeated_texts_are_described_once_and_counted_every_time() -> None:
    vocab = Vocabulary.build(["the cat"])
    texts = ["mail bob@example.com", "the dog", "mail bob@example.com", "你好", "the dog"]
    table = describe(texts, vocabulary=vocab, tokenize=str.split)
    one_by_one = [describe([t], vocabulary=vocab, tokenize=str.split) for t in texts]
    for name, column in table.numeric.items():
        assert column.tolist() == [d.numeric[name][0] for d in one_by_one], name
    for name, values in table.categorical.items():
        assert values == [d.categorical[name][0] for d in one_by_one], name
    assert table.pii_by_type == {"EMAIL": 2} and table.rows == 5


# --- statistics -------------------------------------------------------------------------------------------
def test_numeric_switches_from_ks_to_wasserstein_at_the_large_sample_size() -> None:
    rng = np.random.default_rng(0)
    small = compare_numeric("x", rng.normal(0, 1, 200), rng.normal(0.8, 1, 200), CONFIG)
    assert small.method == "ks" and small.drift and small.p_value is not None and small.p_value < 0.001
    large = compare_numeric("x", rng.normal(0, 1, 2000), rng.normal(0.05, 1, 2000), CONFIG)
    assert large.method == "wasserstein" and not large.drift  # 0.05 std: detectable, but below the 0.1 threshold
    assert large.psi is not None and large.psi_level == "none"
    moved = compare_numeric("x", rng.normal(0, 1, 2000), rng.normal(0.3, 1, 2000), CONFIG)
    assert moved.drift and moved.statistic is not None and 0.2 < moved.statistic < 0.4


def test_psi_levels() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 5000)
    assert psi_numeric(ref, rng.normal(0, 1, 5000)) < 0.02
    assert psi_numeric(ref, rng.normal(1, 1, 5000)) > 0.25
    constant = compare_numeric("c", np.zeros(2000), np.zeros(2000), CONFIG)
    assert constant.statistic == 0.0 and not constant.drift and constant.note


def test_categorical_chi_square_and_jensen_shannon() -> None:
    ref = ["en"] * 180 + ["zh"] * 20
    same = compare_categorical("language", ref, ["en"] * 178 + ["zh"] * 22, CONFIG)
    assert same.method == "chi2" and not same.drift and same.current_shares == {"en": 0.89, "zh": 0.11}
    mixed = compare_categorical("language", ref, ["en"] * 120 + ["zh"] * 40 + ["de"] * 40, CONFIG)
    assert mixed.drift and mixed.psi_level == "major"
    big = compare_categorical("language", ref * 10, (["en"] * 120 + ["zh"] * 40 + ["de"] * 40) * 10, CONFIG)
    assert big.method == "jensen_shannon" and big.drift and big.p_value is None


def test_mmd_permutation_test_on_known_distributions() -> None:
    rng = np.random.default_rng(2)
    same = mmd2_permutation_test(rng.normal(size=(80, 8)), rng.normal(size=(80, 8)), 200, rng)
    moved = mmd2_permutation_test(rng.normal(size=(80, 8)), rng.normal(0.6, 1, size=(80, 8)), 200, rng)
    assert same[1] > 0.05 and moved[1] < 0.01 and moved[0] > same[0]


# --- planted shifts ---------------------------------------------------------------------------------------
EXPECTED = {
    "new_vocabulary": {"prompts.oov_rate", "prompts.new_token_rate", "prompts.classifier"},
    "new_topic": {"prompts.classifier", "completions.classifier"},
    "new_language": {"prompts.script", "prompts.language", "prompts.classifier"},
    "longer_prompts": {"prompts.length_tokens"},
}


@pytest.mark.parametrize("shift", sorted(EXPECTED))
def test_planted_shift_is_detected(reference: Window, shift: str) -> None:
    report = compare_windows(reference, make_window(shift, N, seed=2), config=CONFIG)
    assert report.status == "ok" and report.drift
    assert EXPECTED[shift] <= set(report.drifted), report.drifted
    if shift != "new_topic":  # only the new topic changes what the completions talk about
        assert not report.completions.drift, report.completions.drifted
    _json(report)


def test_new_vocabulary_classifier_names_the_new_words(reference: Window) -> None:
    shifted = make_window("new_vocabulary", N, seed=2)
    result = domain_classifier(reference.prompts, shifted.prompts, CONFIG)
    assert result.auc is not None and result.auc > 0.8 and result.method == "permutation"
    invented = {w for text in shifted.prompts for w in words(text)} - {w for t in reference.prompts for w in words(t)}
    top = [t.term for t in result.current_terms[:5]]
    assert all(term in invented for term in top), top
    assert len(result.current_examples) == CONFIG.top_examples
    assert all(any(w in invented for w in words(e)) for e in result.current_examples)


def test_identical_distributions_stay_within_the_false_positive_rate() -> None:
    """Two samples of one generator, six seeds: every check's alarm rate stays under 2 × alpha + slack."""
    alarms = checks = 0
    classifier_alarms = 0
    for seed in range(6):
        report = compare_windows(
            make_window("no_shift", 200, seed=100 + seed),
            make_window("no_shift", 200, seed=200 + seed),
            config=DriftConfig(seed=seed, detect_language=False),
        )
        for field in (report.prompts, report.completions):
            results = [*field.numeric, *field.categorical, field.classifier]
            checks += sum(1 for r in results if r.status == "ok")
            alarms += sum(1 for r in results if r.drift)
            classifier_alarms += field.classifier.drift
    assert checks >= 6 * 2 * 8
    assert alarms / checks <= 2 * CONFIG.alpha + 0.02, (alarms, checks)
    assert classifier_alarms <= 2  # 12 permutation tests at alpha = 0.05


def test_large_windows_use_effect_sizes_and_stay_quiet_without_shift() -> None:
    config = DriftConfig(detect_language=False, classifier_max_rows=1000)
    ref = Window(prompts=make_window("no_shift", 1000, seed=7, completions=False).prompts)
    same = compare_windows(ref, Window(prompts=make_window("no_shift", 1000, seed=8, completions=False).prompts),
                           config=config)  # fmt: skip
    assert same.status == "ok" and not same.drift, same.drifted
    methods = {c.name: c.method for c in same.prompts.numeric}
    assert methods["length_tokens"] == methods["non_letter_share"] == "wasserstein"
    assert methods["oov_rate"] == "ks"  # its reference side is the half that did not build the vocabulary
    assert same.prompts.classifier.method == "auc_threshold" and same.prompts.classifier.auc is not None
    assert same.prompts.classifier.auc < 0.55
    assert same.completions.status == "not_enough_data" and "0 rows" in (same.completions.reason or "")
    topic = compare_windows(ref, Window(prompts=make_window("new_topic", 1000, seed=8, completions=False).prompts),
                            config=config)  # fmt: skip
    assert "prompts.classifier" in topic.drifted
    assert {t.term for t in topic.prompts.classifier.current_terms[:5]} & {"patient", "doctor", "symptoms", "fever"}


# --- not enough data ----------------------------------------------------------------------------------------
def test_empty_and_small_windows_say_not_enough_data(reference: Window) -> None:
    empty = compare_windows(reference, Window(), config=CONFIG)
    assert empty.status == "not_enough_data" and not empty.drift
    assert empty.reason == "prompts: reference has 300 rows and current 0; each needs at least 30"
    assert empty.prompts.numeric == [] and empty.prompts.classifier.auc is None
    _json(empty)
    small = Window(prompts=reference.prompts[:40], completions=reference.completions[:40])
    report = compare_windows(small, make_window("no_shift", 40, seed=5), config=CONFIG)
    assert report.status == "ok"
    assert report.prompts.classifier.status == "not_enough_data" and report.prompts.classifier.min_rows == 50
    assert all(c.psi is None and c.psi_level == "not_enough_data" for c in report.prompts.numeric)
    oov = next(c for c in report.prompts.numeric if c.name == "oov_rate")  # half the reference built the vocabulary
    assert oov.status == "not_enough_data" and oov.reference_rows < 30
    text = _json(report)
    assert "NaN" not in text and "Infinity" not in text


def test_texts_without_words_do_not_crash_the_classifier() -> None:
    symbols = Window(prompts=tuple(f"{i} + {i} = {2 * i}" for i in range(60)))
    report = domain_classifier(symbols.prompts, symbols.prompts, CONFIG)
    assert report.status == "not_enough_data" and "no word" in (report.reason or "")


def test_windows_must_hold_texts() -> None:
    with pytest.raises(InvalidInput, match="not str"):
        Window(prompts=["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="list"):
        Window(prompts="one string")  # a str is a Sequence[str]: only the check at run time refuses it


# --- models ------------------------------------------------------------------------------------------------
def test_embedding_drift_with_minilm_finds_a_new_topic_and_not_a_reseed() -> None:
    embedder = MiniLMEmbedder(max_tokens=64)
    config = DriftConfig(mmd_permutations=200)
    ref = make_window("no_shift", 100, seed=11).prompts
    same = embedding_drift(ref, make_window("no_shift", 100, seed=12).prompts, embedder, config)
    topic = embedding_drift(ref, make_window("new_topic", 100, seed=12).prompts, embedder, config)
    assert same.status == "ok" and not same.mmd_drift and same.p_value is not None and same.p_value > 0.05
    assert topic.mmd_drift and topic.p_value is not None and topic.p_value <= 0.01
    assert topic.classifier.drift and topic.classifier.method == "permutation"
    assert topic.mmd2 is not None and same.mmd2 is not None and topic.mmd2 > same.mmd2
    assert same.bandwidth is not None and same.bandwidth > 0


class _FakePerplexity:
    """Perplexity = 10 per word, so longer prompts look more surprising (deterministic and instant)."""

    def score(self, texts: Sequence[str]) -> list[float | None]:
        return [10.0 * len(t.split()) if t.split() else None for t in texts]


def test_perplexity_check_is_sampled_and_compared_on_the_log_scale(reference: Window) -> None:
    config = DriftConfig(detect_language=False, perplexity_max_texts=80)
    report = compare_windows(reference, make_window("longer_prompts", N, seed=3), config=config,
                             perplexity=_FakePerplexity())  # fmt: skip
    check = next(c for c in report.prompts.numeric if c.name == "perplexity")
    assert check.drift and check.reference_rows == 80 and check.method == "ks"
    assert check.current_mean is not None and check.reference_mean is not None
    assert math.exp(check.current_mean - check.reference_mean) == pytest.approx(2.0, rel=0.2)
    assert "prompts.perplexity" in report.drifted


def test_reference_model_perplexity_prefers_english_prose_to_character_soup() -> None:
    scorer = CausalLMPerplexity(REFERENCE_MODEL_DIR, batch_size=4)
    prose = [
        "It doesn't matter what you do, it only matters what you say you've done.",
        "Flattery will get you everywhere.",
        "All most men really want in life is a wife, a house, two kids and a car.",
    ]
    rng = np.random.default_rng(0)
    soup = ["".join(rng.choice(list("qxzjvkw#@%&*{}|~^"), size=60)) for _ in range(3)]
    scores = scorer.score([*prose, *soup, ""])
    assert scores[-1] is None
    values = [s for s in scores[:-1] if s is not None]
    assert len(values) == 6 and all(math.isfinite(v) and v > 1 for v in values)
    assert max(values[:3]) * 2 < min(values[3:])
