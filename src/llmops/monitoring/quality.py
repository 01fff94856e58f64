"""Quality signals of one served request, cheap enough to compute for every request.

Each signal is a fact about one answer that an alert rule can count: the answer repeats itself, refuses,
leaks PII, is empty, was cut by the token limit (``finish_reason == "length"``), came too late, or contains
toxic language. None needs a model: repetition and refusal are text statistics and patterns
(:mod:`llmops.monitoring.descriptors`, :mod:`llmops.monitoring.lexicon`), PII reuses the dataset redaction
detectors, toxicity is a :class:`~llmops.monitoring.toxicity.ToxicityClassifier` (the lexicon by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmops.errors import InvalidInput
from llmops.monitoring.descriptors import pii_counts, repeated_ngram_share, words
from llmops.monitoring.lexicon import is_refusal
from llmops.monitoring.toxicity import LexiconToxicity, ToxicityClassifier

REPETITION_NGRAM = 3
"""Repetition is the repeated share of word 3-grams."""
REPETITION_THRESHOLD = 0.3
"""An answer is repetitive from this repeated 3-gram share on (prose scores under 0.05)."""
REPETITION_MIN_NGRAMS = 10
"""Answers with fewer 3-grams are never called repetitive (too short to judge)."""
TOXICITY_THRESHOLD = 0.5
"""``toxic`` is true from this score on (one insult: 0.6; one mild swear word: 0.35)."""

_default_toxicity = LexiconToxicity()


class QualitySignals(BaseModel):
    """The signals of one request (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    repetition: float = Field(description="Repeated word 3-gram share of the completion, in [0, 1].")
    repetitive: bool
    refusal: bool
    pii_count: int
    pii_types: dict[str, int] = Field(default_factory=dict)
    empty: bool = Field(description="The completion has no non-space character.")
    truncated: bool = Field(description="finish_reason was 'length': the token limit cut the answer.")
    latency_breached: bool | None = Field(description="None when no objective or latency was given.")
    toxicity: float
    toxic: bool
    toxic_terms: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def assess(
    prompt: str,
    completion: str,
    *,
    finish_reason: str | None = None,
    latency: float | None = None,
    latency_objective: float | None = None,
    toxicity: ToxicityClassifier | None = None,
    pii: Mapping[str, int] | None = None,
) -> QualitySignals:
    """Quality signals of ``completion`` (the answer to ``prompt``).

    ``latency`` and ``latency_objective`` are in the same unit (seconds in the request store); the objective
    is breached when the latency is strictly above it. The prompt is accepted for classifiers that judge an
    answer in context; the built-in signals look at the completion only. ``pii``: the completion's PII counts
    when the caller has them already (the request store redacts the completion anyway).
    """
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise InvalidInput("prompt and completion must be str; pass an empty string for a missing completion")
    if latency is not None and latency < 0:
        raise InvalidInput(f"latency {latency} is negative: pass the elapsed time of the request")
    if latency_objective is not None and latency_objective <= 0:
        raise InvalidInput(f"latency objective {latency_objective} must be positive")
    units = words(completion)
    repetition = repeated_ngram_share(units, REPETITION_NGRAM)
    ngrams = max(len(units) - REPETITION_NGRAM + 1, 0)
    if pii is None:
        pii = pii_counts(completion) if completion else None
    tox = (toxicity or _default_toxicity).score(completion)
    breached = None if latency is None or latency_objective is None else latency > latency_objective
    return QualitySignals(
        repetition=round(repetition, 4),
        repetitive=ngrams >= REPETITION_MIN_NGRAMS and repetition >= REPETITION_THRESHOLD,
        refusal=is_refusal(completion),
        pii_count=sum(pii.values()) if pii else 0,
        pii_types=dict(sorted(pii.items())) if pii else {},
        empty=not completion.strip(),
        truncated=finish_reason == "length",
        latency_breached=breached,
        toxicity=tox.score,
        toxic=tox.score >= TOXICITY_THRESHOLD,
        toxic_terms=list(tox.terms),
    )


__all__ = [
    "REPETITION_MIN_NGRAMS",
    "REPETITION_NGRAM",
    "REPETITION_THRESHOLD",
    "TOXICITY_THRESHOLD",
    "QualitySignals",
    "assess",
]
