"""The n-gram baselines are proper distributions and match their formulas."""

from __future__ import annotations

import math

import numpy as np

from llmops.training.baselines import baselines, bigram_nll, unigram_log_probs


def _stream(seed: int, n: int, vocab: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # a Markov chain, so that a bigram has something to learn over a unigram
    out = np.empty(n, dtype=np.int64)
    out[0] = 0
    for i in range(1, n):
        out[i] = (out[i - 1] * 3 + rng.integers(0, 3)) % vocab
    return out


def test_unigram_is_add_one() -> None:
    train = np.array([0, 0, 1, 2], dtype=np.int64)
    log_probs = unigram_log_probs(train, vocab_size=5)
    assert np.allclose(np.exp(log_probs), [3 / 9, 2 / 9, 2 / 9, 1 / 9, 1 / 9])


def test_bigram_sums_to_one_for_every_history() -> None:
    """P(· | a) summed over the vocabulary is 1 for seen and unseen histories."""
    vocab = 12
    train = _stream(0, 500, vocab)
    train[train == 7] = 8  # token 7 never occurs: an unseen history and an unseen continuation
    for a in range(vocab):
        total = 0.0
        for b in range(vocab):
            total += math.exp(-bigram_nll(train, np.array([a, b], dtype=np.int64), vocab))
        assert abs(total - 1.0) < 1e-9, a


def test_bigram_beats_unigram_on_a_markov_chain() -> None:
    vocab = 50
    result = baselines(_stream(1, 20_000, vocab), _stream(2, 2_000, vocab), vocab)
    assert result.predicted_tokens == 1_999
    assert result.bigram_perplexity < result.unigram_perplexity / 5
    assert result.bigram_perplexity > 2.5  # three successors each: it cannot beat the chain's own entropy (~3)
