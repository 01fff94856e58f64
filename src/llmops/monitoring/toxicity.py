"""Toxicity scoring behind a small interface, with a lexicon for English and Chinese as the built-in.

The platform must score every answer offline and in microseconds, so the default is a curated lexicon of
insults, profanity and threats with a weight per term. A trained classifier (a Detoxify-like model, a
moderation endpoint) plugs in by implementing :class:`ToxicityClassifier`.

Limits of the lexicon, stated so nobody trusts it beyond them:

- **No context.** "Kill the process", "this bug is killing me" and a quoted insult in a moderation question
  are scored like the real thing when they contain a listed phrase; the list avoids bare words like "kill"
  for that reason, which in turn misses threats phrased without a listed phrase.
- **No sarcasm, irony or implicit hostility** ("what a genius move", dog whistles) — nothing lexical to find.
- **Obfuscation** defeats it: ``f*ck``, ``f u c k``, ``sh1t``, homoglyphs, pinyin (``sb``, ``nmsl``) and
  emoji are not normalised, except that English is matched case-insensitively on word boundaries.
- **Chinese is matched as substrings** (no word boundaries): a term inside an innocent compound
  (废物 in 废物利用, "recycling") is a false hit.
- **Small and English/Chinese only**; identity-based slurs are deliberately few. Extend it with
  ``LexiconToxicity(extra_terms=...)``.

The score is ``1 − Π(1 − wᵢ)`` over the distinct matched terms: one mild swear word stays low, several
insults or any threat approach 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

INSULT, PROFANITY, THREAT = 0.6, 0.35, 0.9
"""Weights of the three categories of terms."""

TOXIC_TERMS_EN: dict[str, float] = {
    **dict.fromkeys(
        ["idiot", "idiots", "moron", "morons", "imbecile", "stupid bitch", "dumbass", "jackass", "loser",
         "scumbag", "scum", "worthless piece", "pathetic loser", "retard", "retarded", "asshole", "assholes",
         "dickhead", "bastard", "bitch", "bitches", "cunt", "twat", "shut up", "shut the fuck up", "stupid idiot",
         "piece of shit", "son of a bitch", "you are stupid", "you're stupid", "you are an idiot",
         "you're an idiot", "you are worthless", "you're worthless", "you are pathetic", "you're pathetic"],
        INSULT,
    ),
    **dict.fromkeys(
        ["fuck", "fucking", "fucked", "fucker", "motherfucker", "shit", "shitty", "bullshit", "damn", "goddamn",
         "crap", "piss off", "pissed off", "wtf", "stfu"],
        PROFANITY,
    ),
    **dict.fromkeys(
        ["kill yourself", "kys", "i will kill you", "i'll kill you", "i am going to kill you",
         "i'm going to kill you", "go die", "you should die", "hope you die", "i will hurt you", "i'll hurt you",
         "i will find you", "burn in hell", "go to hell"],
        THREAT,
    ),
}  # fmt: skip
"""English terms and phrases (lower case, matched on word boundaries) with their weights."""

TOXIC_TERMS_ZH: dict[str, float] = {
    **dict.fromkeys(
        ["傻逼", "傻B", "煞笔", "白痴", "蠢货", "蠢猪", "废物", "贱人", "混蛋", "王八蛋", "脑残", "弱智", "狗东西",
         "人渣", "垃圾东西", "滚蛋", "滚开", "闭嘴", "你算什么东西", "不要脸"],
        INSULT,
    ),
    **dict.fromkeys(["他妈的", "妈的", "操你", "卧槽", "狗屎", "屁话", "草泥马"], PROFANITY),
    **dict.fromkeys(["去死", "杀了你", "弄死你", "打死你", "砍死你", "你怎么不去死", "全家死光"], THREAT),
}  # fmt: skip
"""Chinese terms (matched as substrings) with their weights."""


@dataclass(frozen=True)
class ToxicityResult:
    score: float
    """In [0, 1]; 0 means nothing was found, not that the text is safe."""
    terms: tuple[str, ...] = ()
    """What matched (lexicon terms, or a classifier's labels)."""


class ToxicityClassifier(Protocol):
    """Anything that scores a text's toxicity in [0, 1] and says why."""

    def score(self, text: str) -> ToxicityResult: ...


class LexiconToxicity:
    """The lexicon classifier (see the module docstring for its limits)."""

    def __init__(self, extra_terms: Mapping[str, float] | None = None) -> None:
        en = dict(TOXIC_TERMS_EN)
        zh = dict(TOXIC_TERMS_ZH)
        for term, weight in (extra_terms or {}).items():
            if not 0 < weight <= 1:
                raise ValueError(f"weight of {term!r} is {weight}; weights are in (0, 1]")
            (en if term.isascii() else zh)[term.lower() if term.isascii() else term] = weight
        self._weights = {**en, **zh}
        by_length = sorted(en, key=len, reverse=True)  # longest first: "piece of shit" before "shit"
        self._en = re.compile(r"(?<![\w'])(?:" + "|".join(re.escape(t) for t in by_length) + r")(?![\w'])")
        self._zh = re.compile("|".join(re.escape(t) for t in sorted(zh, key=len, reverse=True)))

    def score(self, text: str) -> ToxicityResult:
        lowered = text.lower().replace("\u2019", "'")
        found = set(self._en.findall(lowered))
        if not text.isascii():
            found.update(self._zh.findall(text))
        if not found:
            return ToxicityResult(0.0)
        keep = 1.0
        for term in found:
            keep *= 1.0 - self._weights[term]
        return ToxicityResult(round(1.0 - keep, 4), tuple(sorted(found)))


__all__ = [
    "INSULT",
    "PROFANITY",
    "THREAT",
    "TOXIC_TERMS_EN",
    "TOXIC_TERMS_ZH",
    "LexiconToxicity",
    "ToxicityClassifier",
    "ToxicityResult",
]
