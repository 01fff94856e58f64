"""Per-text descriptors of prompts and completions: the numbers that drift tests compare.

A drift test cannot compare texts directly; it compares distributions of numbers computed from each text.
These are the cheap ones (no model but a tokenizer and py3langid): length in tokens, out-of-vocabulary and
new-token rates against a reference vocabulary, the share of non-letter characters, the dominant script and
language, the repeated n-gram share, refusal and PII. Perplexity needs a language model and lives in
:mod:`llmops.monitoring.perplexity`.

**Words.** Vocabulary and repetition work on *words*: lower-cased runs of letters, and each Han, Kana or
Hangul character on its own (those scripts do not separate words with spaces). Digits are not words: order
numbers and dates would otherwise make every window look full of new vocabulary. A byte-level BPE tokenizer
(the reference model's) is the wrong unit for vocabulary: it never meets an unknown piece, and a new word
splits into pieces the reference has seen, so the signal would vanish.

**Tokens.** Lengths are counted with a tokenizer: any callable ``tokenize(text) -> list[str | int]``, or a
Hugging Face ``tokenizer.json`` loaded from a model directory (default: the reference model in
``assets/reference-lm``), which encodes a whole batch in Rust.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmops.datasets.language import CJK_SCRIPTS, char_class, detect_language, script_counts
from llmops.datasets.transforms.pii import redact_text
from llmops.errors import InvalidInput
from llmops.monitoring.lexicon import is_refusal

REFERENCE_MODEL_DIR = Path(__file__).resolve().parents[3] / "assets" / "reference-lm"
"""The reference model shipped with the repository; its tokenizer and weights are the defaults here."""

LANGUAGE_CHARS = 500
"""Script and language are read from the first 500 characters: enough to identify them, and it bounds the
cost of py3langid (the slowest descriptor) on long completions."""

NO_SCRIPT = "none"
"""Script of a text without letters (empty, digits or symbols only)."""

_CJK = char_class(CJK_SCRIPTS)
_WORD = re.compile(f"[{_CJK}]|[^\\W\\d_{_CJK}]+")
_SPACE = re.compile(r"\s+")
_LETTER = re.compile(r"[^\W\d_]")

Tokenize = Callable[[str], Sequence[str | int]]
"""A tokenizer as a plain function: text in, tokens (strings or ids) out."""


@runtime_checkable
class BatchTokenizer(Protocol):
    """A tokenizer that also encodes many texts at once (faster than one call per text)."""

    def __call__(self, text: str) -> Sequence[str | int]: ...

    def batch(self, texts: Sequence[str]) -> list[Sequence[str | int]]: ...


class HFTokenizer:
    """A Hugging Face fast tokenizer (``tokenizer.json`` of a model directory), without special tokens."""

    def __init__(self, model_dir: Path | str = REFERENCE_MODEL_DIR) -> None:
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise InvalidInput(f"no tokenizer.json in {model_dir}: pass a model directory with a fast tokenizer")
        self._tok: Any = Tokenizer.from_file(str(path))
        self.model_dir = Path(model_dir)

    def __call__(self, text: str) -> Sequence[str | int]:
        ids: list[int] = self._tok.encode(text, add_special_tokens=False).ids
        return ids

    def batch(self, texts: Sequence[str]) -> list[Sequence[str | int]]:
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings]


_default_tokenizer: HFTokenizer | None = None


def default_tokenizer() -> HFTokenizer:
    """The reference model's tokenizer, loaded once per process."""
    global _default_tokenizer
    if _default_tokenizer is None:
        _default_tokenizer = HFTokenizer(REFERENCE_MODEL_DIR)
    return _default_tokenizer


def tokenize_all(tokenize: Tokenize | BatchTokenizer, texts: Sequence[str]) -> list[Sequence[str | int]]:
    """Tokens of every text, in one batch call when the tokenizer offers it."""
    if isinstance(tokenize, BatchTokenizer):
        return tokenize.batch(texts)
    return [tokenize(t) for t in texts]


def words(text: str) -> list[str]:
    """The words of ``text`` (see the module docstring): lower-cased letter runs, CJK characters one by one."""
    return _WORD.findall(text.lower())


def repeated_ngram_share(units: Sequence[str], n: int = 3) -> float:
    """Share of the n-grams of ``units`` that repeat an earlier one: 1 − distinct/total (0 below n units).

    Natural prose of a few hundred words scores under 0.05; a model stuck in a loop approaches 1.
    """
    total = len(units) - n + 1
    if total <= 0:
        return 0.0
    distinct = len(set(zip(*(units[i:] for i in range(n)), strict=False)))
    return 1.0 - distinct / total


def non_letter_share(text: str) -> float:
    """Share of the non-space characters that are not letters (digits, punctuation, symbols, emoji); 0 if none."""
    compact = _SPACE.sub("", text)
    if not compact:
        return 0.0
    return 1.0 - len(_LETTER.findall(compact)) / len(compact)


def dominant_script(text: str) -> str:
    """The script with most letters (:mod:`llmops.datasets.language`), or ``"none"`` without letters."""
    counts = script_counts(text)
    return counts.most_common(1)[0][0] if counts else NO_SCRIPT


def pii_counts(text: str) -> Counter[str]:
    """PII values found in ``text``, counted by type (``EMAIL``, ``PHONE``, ...)."""
    return redact_text(text)[1]


@dataclass(frozen=True)
class Vocabulary:
    """The set of words seen in a reference sample."""

    words: frozenset[str]

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocabulary:
        seen: set[str] = set()
        for text in texts:
            seen.update(words(text))
        return cls(frozenset(seen))

    def rates(self, units: Sequence[str]) -> tuple[float, float]:
        """(out-of-vocabulary rate, new-token rate) of one text's words; (0, 0) for a text without words.

        OOV rate: share of the word occurrences not in the vocabulary. New-token rate: share of the distinct
        words never seen in the reference.
        """
        if not units:
            return 0.0, 0.0
        vocab = self.words
        oov = sum(1 for u in units if u not in vocab)
        distinct = set(units)
        new = sum(1 for u in distinct if u not in vocab)
        return oov / len(units), new / len(distinct)


NUMERIC_DESCRIPTORS: tuple[str, ...] = (
    "length_tokens",
    "oov_rate",
    "new_token_rate",
    "non_letter_share",
    "repeated_ngram_share",
)
"""Numeric descriptors computed for every text (perplexity is added by the drift report for prompts)."""

CATEGORICAL_DESCRIPTORS: tuple[str, ...] = ("script", "language", "refusal", "pii")
"""Categorical descriptors: dominant script, language code, and yes/no for refusal and PII."""


@dataclass
class DescriptorTable:
    """Descriptors of a list of texts, one entry per text in each column."""

    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    pii_by_type: Counter[str] = field(default_factory=Counter)
    rows: int = 0


def describe(
    texts: Sequence[str],
    *,
    vocabulary: Vocabulary,
    tokenize: Tokenize | BatchTokenizer | None = None,
    ngram: int = 3,
    language: bool = True,
) -> DescriptorTable:
    """Every descriptor of every text (see :data:`NUMERIC_DESCRIPTORS`, :data:`CATEGORICAL_DESCRIPTORS`).

    ``tokenize`` counts lengths (default: the reference model's tokenizer). Script and language look at the first
    :data:`LANGUAGE_CHARS` characters; ``language=False`` skips py3langid (the costliest descriptor), reporting
    ``"und"`` for every text.
    """
    tok = tokenize if tokenize is not None else default_tokenizer()
    n = len(texts)
    lengths = np.fromiter((len(t) for t in tokenize_all(tok, texts)), dtype=np.float64, count=n)
    oov = np.zeros(n)
    new = np.zeros(n)
    nonletter = np.zeros(n)
    repeated = np.zeros(n)
    scripts: list[str] = []
    languages: list[str] = []
    refusals: list[str] = []
    pii: list[str] = []
    pii_total: Counter[str] = Counter()
    # Traffic repeats itself (templated prompts, retries, canned answers): each distinct text is described once.
    seen: dict[str, tuple[float, float, float, float, str, str, str, Counter[str]]] = {}
    for i, text in enumerate(texts):
        row = seen.get(text)
        if row is None:
            units = words(text)
            head = text[:LANGUAGE_CHARS]
            row = seen[text] = (
                *vocabulary.rates(units),
                non_letter_share(text),
                repeated_ngram_share(units, ngram),
                dominant_script(head),
                detect_language(head)[0] if language else "und",
                "yes" if is_refusal(text) else "no",
                pii_counts(text),
            )
        oov[i], new[i], nonletter[i], repeated[i], script, lang, refusal, found = row
        scripts.append(script)
        languages.append(lang)
        refusals.append(refusal)
        pii.append("yes" if found else "no")
        pii_total.update(found)
    return DescriptorTable(
        numeric={
            "length_tokens": lengths,
            "oov_rate": oov,
            "new_token_rate": new,
            "non_letter_share": nonletter,
            "repeated_ngram_share": repeated,
        },
        categorical={"script": scripts, "language": languages, "refusal": refusals, "pii": pii},
        pii_by_type=pii_total,
        rows=n,
    )


__all__ = [
    "CATEGORICAL_DESCRIPTORS",
    "LANGUAGE_CHARS",
    "NO_SCRIPT",
    "NUMERIC_DESCRIPTORS",
    "REFERENCE_MODEL_DIR",
    "BatchTokenizer",
    "DescriptorTable",
    "HFTokenizer",
    "Tokenize",
    "Vocabulary",
    "default_tokenizer",
    "describe",
    "dominant_script",
    "non_letter_share",
    "pii_counts",
    "repeated_ngram_share",
    "tokenize_all",
    "words",
]
