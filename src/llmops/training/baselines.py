"""Unigram and bigram language models over token ids: the bar the reference model must clear.

Both are estimated on the training token stream and evaluated on the validation stream with the same tokenizer,
predicting the same tokens as the model (every token of the stream after the first), so the perplexities are
directly comparable.

- Unigram: add-one (Laplace) smoothing over the whole vocabulary, ``P(w) = (c(w) + 1) / (N + V)``.
- Bigram: interpolated Kneser-Ney with one absolute discount ``d = 0.75``:
  ``P(b | a) = max(c(a, b) - d, 0) / c(a) + d · N1+(a •) / c(a) · P_cont(b)``, where the continuation
  probability ``P_cont(b) = (N1+(• b) + 1) / (N1+(• •) + V)`` is add-one smoothed so that a token never seen
  after anything keeps a non-zero probability; for a history ``a`` never seen, ``P(b | a) = P_cont(b)``.

Written here rather than taken from a library because the counts are over token ids in numpy arrays and the
estimators are a dozen lines; NLTK's ``lm`` module would need the stream as Python lists of strings and is
orders of magnitude slower on millions of tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

KN_DISCOUNT = 0.75

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class BaselineResult:
    unigram_perplexity: float
    bigram_perplexity: float
    predicted_tokens: int


def unigram_log_probs(train: IntArray, vocab_size: int) -> FloatArray:
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64)
    return np.asarray(np.log((counts + 1.0) / (counts.sum() + vocab_size)), dtype=np.float64)


def bigram_nll(train: IntArray, validation: IntArray, vocab_size: int, discount: float = KN_DISCOUNT) -> float:
    """Mean negative log-likelihood (nats) of ``validation[1:]`` under the interpolated Kneser-Ney bigram."""
    v = np.int64(vocab_size)
    pairs = train[:-1] * v + train[1:]
    unique_pairs, pair_counts = np.unique(pairs, return_counts=True)
    first, second = unique_pairs // v, unique_pairs % v
    history_counts = np.bincount(first, weights=pair_counts, minlength=vocab_size)  # c(a) as a history
    followers = np.bincount(first, minlength=vocab_size).astype(np.float64)  # N1+(a •)
    continuation = np.bincount(second, minlength=vocab_size).astype(np.float64)  # N1+(• b)
    p_cont = (continuation + 1.0) / (len(unique_pairs) + vocab_size)

    a, b = validation[:-1], validation[1:]
    query = a * v + b
    index = np.clip(np.searchsorted(unique_pairs, query), 0, len(unique_pairs) - 1)
    found = unique_pairs[index] == query
    c_ab = np.where(found, pair_counts[index], 0).astype(np.float64)
    c_a = history_counts[a]
    seen = c_a > 0
    safe_c_a = np.where(seen, c_a, 1.0)
    interpolated = np.maximum(c_ab - discount, 0.0) / safe_c_a + discount * followers[a] / safe_c_a * p_cont[b]
    probs = np.where(seen, interpolated, p_cont[b])
    return float(-np.log(probs).mean())


def baselines(train: IntArray, validation: IntArray, vocab_size: int) -> BaselineResult:
    unigram = unigram_log_probs(train, vocab_size)
    unigram_nll = float(-unigram[validation[1:]].mean())
    return BaselineResult(
        unigram_perplexity=math.exp(unigram_nll),
        bigram_perplexity=math.exp(bigram_nll(train, validation, vocab_size)),
        predicted_tokens=int(len(validation) - 1),
    )
