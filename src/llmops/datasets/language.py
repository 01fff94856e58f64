"""Script and language identification for dataset rows.

Two cheap signals that filters, statistics and monitoring share:

- **Script** is read straight from Unicode code point ranges (no model): it is exact, instant and
  works on a single character, which is what CJK-aware tokenisation and shingling need. Only letters
  count (digits, punctuation, symbols and spaces are script-neutral), so "価格: 100円" is Han/Kana
  rather than "Other". The ranges (Unicode blocks, inclusive) are:

  ========== ==================================================================================
  Latin      0041–005A, 0061–007A (ASCII letters), 00C0–024F (Latin-1 Supplement letters, Latin
             Extended-A/B; 00D7 × and 00F7 ÷ are symbols), 0250–02AF (IPA), 1E00–1EFF (Latin
             Extended Additional), 2C60–2C7F, A720–A7FF (Extended-C/D), AB30–AB6F (Extended-E),
             FF21–FF3A, FF41–FF5A (fullwidth Latin)
  Greek      0370–03FF, 1F00–1FFF (Greek Extended)
  Cyrillic   0400–052F, 1C80–1C8F, 2DE0–2DFF, A640–A69F
  Arabic     0600–06FF, 0750–077F, 0870–08FF, FB50–FDFF, FE70–FEFF (presentation forms)
  Devanagari 0900–097F, A8E0–A8FF
  Hangul     1100–11FF (Jamo), 3130–318F (compatibility Jamo), A960–A97F, AC00–D7AF (syllables),
             D7B0–D7FF, FFA0–FFDC (halfwidth)
  Han        2E80–2FDF (radicals), 3005–3007 (々 〆 〇), 3021–3029, 3038–303B, 3400–4DBF (Ext. A),
             4E00–9FFF (Unified), F900–FAFF (compatibility), 20000–2FA1F (Ext. B–F, compatibility
             supplement), 30000–323AF (Ext. G–H)
  Kana       3040–309F (Hiragana), 30A0–30FF (Katakana), 31F0–31FF (Katakana phonetic extensions),
             FF66–FF9F (halfwidth Katakana), 1B000–1B16F (Kana supplement / extended-A)
  Other      any other letter (a word character that is not a digit or underscore, i.e. Unicode letters
             and the few numeric characters Python counts as alphanumeric, such as ½)
  ========== ==================================================================================

  Japanese mixes Han and Kana; :func:`script_of` reports the majority, so kanji-heavy Japanese may
  read as "Han". Filters that mean "CJK" should allow all of :data:`CJK_SCRIPTS`.

- **Language** comes from py3langid (a maintained fork of langid.py): a naive Bayes byte n-gram model
  that ships inside the wheel (an LZMA-compressed npz, no pickle), so it works offline. Loading the
  model costs about a second, so it is loaded lazily, once per process, on first use.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import Counter
from typing import Any

LATIN = "Latin"
HAN = "Han"
KANA = "Kana"
HANGUL = "Hangul"
CYRILLIC = "Cyrillic"
ARABIC = "Arabic"
DEVANAGARI = "Devanagari"
GREEK = "Greek"
OTHER = "Other"

SCRIPTS: tuple[str, ...] = (LATIN, HAN, KANA, HANGUL, CYRILLIC, ARABIC, DEVANAGARI, GREEK, OTHER)
"""Every value :func:`script_of` can return."""

CJK_SCRIPTS: frozenset[str] = frozenset({HAN, KANA, HANGUL})
"""Scripts written without spaces between words (Hangul uses spaces, but its syllable blocks carry as much
as a short word, so we treat it like Han and Kana for token counting and shingling)."""

UNDETERMINED = "und"
"""ISO 639-2 code for "undetermined": returned for empty or too short text."""

MIN_LETTERS_FOR_LANGUAGE = 3
"""Fewer letters than this and :func:`detect_language` does not guess."""

# (first, last, script), inclusive, sorted by first; see the module docstring.
_RANGES: tuple[tuple[int, int, str], ...] = tuple(
    sorted(
        [
            (0x0041, 0x005A, LATIN),
            (0x0061, 0x007A, LATIN),
            (0x00C0, 0x00D6, LATIN),
            (0x00D8, 0x00F6, LATIN),
            (0x00F8, 0x024F, LATIN),
            (0x0250, 0x02AF, LATIN),
            (0x0370, 0x03FF, GREEK),
            (0x0400, 0x052F, CYRILLIC),
            (0x0600, 0x06FF, ARABIC),
            (0x0750, 0x077F, ARABIC),
            (0x0870, 0x08FF, ARABIC),
            (0x0900, 0x097F, DEVANAGARI),
            (0x1100, 0x11FF, HANGUL),
            (0x1C80, 0x1C8F, CYRILLIC),
            (0x1E00, 0x1EFF, LATIN),
            (0x1F00, 0x1FFF, GREEK),
            (0x2C60, 0x2C7F, LATIN),
            (0x2DE0, 0x2DFF, CYRILLIC),
            (0x2E80, 0x2FDF, HAN),
            (0x3005, 0x3007, HAN),
            (0x3021, 0x3029, HAN),
            (0x3038, 0x303B, HAN),
            (0x3040, 0x309F, KANA),
            (0x30A0, 0x30FF, KANA),
            (0x3130, 0x318F, HANGUL),
            (0x31F0, 0x31FF, KANA),
            (0x3400, 0x4DBF, HAN),
            (0x4E00, 0x9FFF, HAN),
            (0xA640, 0xA69F, CYRILLIC),
            (0xA720, 0xA7FF, LATIN),
            (0xA8E0, 0xA8FF, DEVANAGARI),
            (0xA960, 0xA97F, HANGUL),
            (0xAB30, 0xAB6F, LATIN),
            (0xAC00, 0xD7AF, HANGUL),
            (0xD7B0, 0xD7FF, HANGUL),
            (0xF900, 0xFAFF, HAN),
            (0xFB50, 0xFDFF, ARABIC),
            (0xFE70, 0xFEFF, ARABIC),
            (0xFF21, 0xFF3A, LATIN),
            (0xFF41, 0xFF5A, LATIN),
            (0xFF66, 0xFF9F, KANA),
            (0xFFA0, 0xFFDC, HANGUL),
            (0x1B000, 0x1B16F, KANA),
            (0x20000, 0x2FA1F, HAN),
            (0x30000, 0x323AF, HAN),
        ]
    )
)
_STARTS: list[int] = [first for first, _, _ in _RANGES]
_ALL_RANGES = "".join(f"{chr(first)}-{chr(last)}" for first, last, _ in _RANGES)
_SCRIPT_PATTERNS: dict[str, re.Pattern[str]] = {
    script: re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b, s in _RANGES if s == script) + "]")
    for script in SCRIPTS
    if script != OTHER
}
_LETTER = re.compile(r"[^\W\d_]")
_OTHER_LETTER = re.compile(f"(?![{_ALL_RANGES}])[^\\W\\d_]")


def script_ranges(scripts: frozenset[str] | set[str]) -> list[tuple[int, int]]:
    """The code point ranges (inclusive) listed for ``scripts``; "Other" has none (it is "any other letter")."""
    return [(first, last) for first, last, script in _RANGES if script in scripts]


def char_class(scripts: frozenset[str] | set[str]) -> str:
    """A regular expression character class body (without brackets) matching the ranges of ``scripts``."""
    return "".join(f"{chr(first)}-{chr(last)}" for first, last in script_ranges(scripts))


def char_script(char: str) -> str | None:
    """The script of one character, or None when it is not a letter of any script (digit, space, symbol).

    Characters in a listed range count even when Unicode files them as marks or symbols (Devanagari vowel
    signs, the iteration mark 々), because they belong to the writing of that script.
    """
    cp = ord(char)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0:
        first, last, script = _RANGES[i]
        if first <= cp <= last:
            return script
    if cp < 0x80:
        return None
    return OTHER if _LETTER.match(char) else None


def script_counts(text: str) -> Counter[str]:
    """Number of letters of each script in ``text`` (script-neutral characters are not counted); the same
    answer as ``char_script`` on every character, computed with one regular expression pass per script."""
    counts: Counter[str] = Counter()
    for script, pattern in _SCRIPT_PATTERNS.items():
        n = len(pattern.findall(text))
        if n:
            counts[script] = n
    other = len(_OTHER_LETTER.findall(text))
    if other:
        counts[OTHER] = other
    return counts


def script_shares(text: str) -> dict[str, float]:
    """Share of each script among the letters of ``text``, largest first; empty for text without letters."""
    counts = script_counts(text)
    total = sum(counts.values())
    if total == 0:
        return {}
    return {script: n / total for script, n in counts.most_common()}


def script_of(text: str) -> str:
    """The dominant script of ``text`` (most letters; ties in ``SCRIPTS`` order), "Other" if no letters."""
    counts = script_counts(text)
    if not counts:
        return OTHER
    return counts.most_common(1)[0][0]


def is_cjk(text: str) -> bool:
    """Whether the dominant script of ``text`` is written without spaces between words (Han, Kana, Hangul)."""
    return script_of(text) in CJK_SCRIPTS


_identifier: Any = None
_identifier_lock = threading.Lock()


def _language_identifier() -> Any:
    """The py3langid identifier with normalised probabilities, loaded once per process on first use."""
    global _identifier
    if _identifier is None:
        with _identifier_lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect_language(text: str) -> tuple[str, float]:
    """The language of ``text`` as an ISO 639-1 code (py3langid's label set) and a confidence in [0, 1].

    Returns ``("und", 0.0)`` for text with fewer than :data:`MIN_LETTERS_FOR_LANGUAGE` letters, and "und"
    with the model's confidence when the model itself says "no linguistic content" (``zxx``). Confidence
    is the normalised posterior; short text in a language with close relatives (Chinese one-liners,
    Scandinavian languages) gets lower values, so filters should use modest thresholds (0.5 is a good
    start).
    """
    letters = sum(1 for char in text if char.isalpha())
    if letters < MIN_LETTERS_FOR_LANGUAGE:
        return UNDETERMINED, 0.0
    code, confidence = _language_identifier().classify(text)
    if code == "zxx":
        return UNDETERMINED, float(confidence)
    return str(code), float(confidence)


__all__ = [
    "ARABIC",
    "CJK_SCRIPTS",
    "CYRILLIC",
    "DEVANAGARI",
    "GREEK",
    "HAN",
    "HANGUL",
    "KANA",
    "LATIN",
    "OTHER",
    "SCRIPTS",
    "UNDETERMINED",
    "char_class",
    "char_script",
    "detect_language",
    "is_cjk",
    "script_counts",
    "script_ranges",
    "script_of",
    "script_shares",
]
