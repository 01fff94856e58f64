"""Text quality measures used by the filters: tokens, repetition and symbol ratios.

Tokens, kept simple on purpose: every CJK character (Han, Kana, Hangul; see ``language.py``) is one token,
and every other run of non-space characters is one token. That is whitespace words for Latin, Cyrillic and
the like, and characters for languages written without spaces, which is close to how subword tokenizers
count both (a filter that needs the exact count of a model's tokenizer passes its ``tokenizer.json``).

Repetition follows the repetition filters of Gopher (Rae et al. 2021, "Scaling Language Models: Methods,
Analysis & Insights from Training Gopher", appendix A, table A1), with their thresholds as defaults:

- duplicate lines: share of lines that repeat an earlier line (> 0.30 removes), and share of characters in
  such lines (> 0.20);
- top n-gram: share of characters covered by the most frequent word n-gram, n = 2, 3, 4 (> 0.20, 0.18,
  0.16);
- duplicate n-grams: share of characters in word n-grams seen before, n = 5 … 10 (> 0.15 … 0.10), counted
  without overlap as in DataTrove's implementation of the same filters.

Symbol ratio: the share of non-space characters that are symbols (Unicode categories S*: math, currency,
emoji, box drawing …) or punctuation outside ``ORDINARY_PUNCTUATION``; plus Gopher's hash-and-ellipsis to
word ratio (> 0.1 removes).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from llmops.datasets.language import CJK_SCRIPTS, char_class

_CJK = char_class(CJK_SCRIPTS)
_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")

ORDINARY_PUNCTUATION = frozenset(".,;:!?'\"()[]-–—/&%@…·、。，；：！？「」『』（）《》〈〉【】“”‘’")
"""Punctuation found in ordinary prose (Latin and CJK); it does not count towards the symbol ratio."""


def tokens(text: str) -> list[str]:
    """The tokens of ``text`` as defined in the module docstring."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def duplicate_line_fractions(text: str) -> tuple[float, float]:
    """(share of non-empty lines that repeat an earlier line, share of characters in those lines)."""
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_lines = dup_chars = total_chars = 0
    for line in lines:
        total_chars += len(line)
        if line in seen:
            dup_lines += 1
            dup_chars += len(line)
        else:
            seen.add(line)
    return dup_lines / len(lines), dup_chars / total_chars


def top_ngram_char_fraction(words: list[str], n: int) -> float:
    """Share of word characters covered by the most frequent ``n``-gram (0 when it occurs once)."""
    if len(words) < n:
        return 0.0
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    total = sum(len(w) for w in words)
    return min(1.0, sum(len(w) for w in gram) * count / total) if total else 0.0


def duplicate_ngram_char_fraction(words: list[str], n: int) -> float:
    """Share of word characters inside ``n``-grams that already occurred (non-overlapping, left to right)."""
    if len(words) < n:
        return 0.0
    total = sum(len(w) for w in words)
    if not total:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    i = 0
    while i <= len(words) - n:
        gram = tuple(words[i : i + n])
        if gram in seen:
            repeated += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated / total


def symbol_ratio(text: str) -> float:
    """Share of non-space characters that are symbols or unusual punctuation (see the module docstring)."""
    total = symbols = 0
    for char in text:
        if char.isspace():
            continue
        total += 1
        if char in ORDINARY_PUNCTUATION:
            continue
        category = unicodedata.category(char)
        if category[0] == "S" or category[0] == "P":
            symbols += 1
    return symbols / total if total else 0.0


def hash_ellipsis_ratio(text: str) -> float:
    """Gopher's ratio of "#" characters and ellipses ("..." or "…") to words."""
    words = len(text.split())
    if not words:
        return 0.0
    return (text.count("#") + text.count("...") + text.count("…")) / words
