"""Deterministic English-like and Chinese text for the dataset benchmarks, and planted near-duplicates.

Rows are made of tokens, the way the dedup transform sees them after canonicalisation:

- English rows are words drawn with a Zipf law from ``EN_WORDS`` (the most frequent English words) followed by
  syllable-made words up to ``vocabulary`` words, lower case, joined by single spaces into sentences that end
  with a period (the text capitalises each sentence's first word);
- Chinese rows are characters (a Zipf law over ``HAN_CHARS``) with ``，`` and ``。`` every few characters,
  never two punctuation marks in a row.

So the 5-token shingles of a row are the windows of its token list, and the Jaccard similarity of a planted
near-duplicate is computed exactly from its edits, independently of the platform's code.

Near-duplicates are made by small edits (a word or character substituted, inserted, deleted, or two
neighbours swapped) applied one at a time until the Jaccard similarity of the 5-gram shingle sets reaches a
target drawn in ``[low, high]``; an edit that would take it below ``low`` is undone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

_EN_TEXT = """
the of and to a in is it you that he was for on are with as i his they be at one have this from or had by
not word but what some we can out other were all there when up use your how said an each she which do their
time if will way about many then them write would like so these her long make thing see him two has look more
day could go come did number sound no most people my over know water than call first who may down side been
now find any new work part take get place made live where after back little only round man year came show
every good me give our under name very through just form sentence great think say help low line differ turn
cause much mean before move right boy old too same tell does set three want air well also play small end put
home read hand port large spell add even land here must big high such follow act why ask men change went
light kind off need house picture try us again animal point mother world near build self earth father head
stand own page should country found answer school grow study still learn plant cover food sun four between
state keep eye never last let thought city tree cross farm hard start might story saw far sea draw left late
run while press close night real life few north open seem together next white children begin got walk
example ease paper group always music those both mark often letter until mile river car feet care second book
carry took science eat room friend began idea fish mountain stop once base hear horse cut sure watch color
face wood main enough plain girl usual young ready above ever red list though feel talk bird soon body dog
family direct pose leave song measure door product black short numeral class wind question happen complete
ship area half rock order fire south problem piece told knew pass since top whole king space heard best hour
better true during hundred five remember step early hold west ground interest reach fast verb sing listen
six table travel less morning ten simple several vowel toward war lay against pattern slow center love
person money serve appear road map rain rule govern pull cold notice voice unit power town fine certain fly
fall lead cry dark machine note wait plan figure star box noun field rest correct able pound done beauty
drive stood contain front teach week final gave green oh quick develop ocean warm free minute strong special
mind behind clear tail produce fact street inch multiply nothing course stay wheel full force blue object
decide surface deep moon island foot system busy test record boat common gold possible plane stead dry
wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant fill
east paint language among
"""
EN_WORDS = _EN_TEXT.split()
"""The most frequent English words (common frequency lists), in roughly that order."""

HAN_CHARS = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么"
    "心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现"
    "分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位"
    "因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师"
    "书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及"
    "今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结"
    "六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区"
    "即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音"
)
"""Common Chinese characters (all in the CJK Unified Ideographs block)."""

_ONSETS = ("b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "cr", "dr", "fl")
_ONSETS2 = ("gr", "pl", "pr", "sh", "st", "th", "tr", "ch", "sl", "sp")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "ee")
_CODAS = ("", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck")
PUNCT = frozenset("，。")


def make_vocabulary(size: int, seed: int) -> list[str]:
    """``EN_WORDS`` followed by distinct syllable-made words, ``size`` words in all."""
    rng = random.Random(seed)
    words = list(dict.fromkeys(EN_WORDS))
    seen = set(words)
    onsets = _ONSETS + _ONSETS2
    while len(words) < size:
        word = "".join(rng.choice(onsets) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 3))) + rng.choice(_CODAS)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words[:size]


def zipf_weights(n: int, exponent: float = 1.0, offset: float = 2.7) -> np.ndarray:
    """Zipf–Mandelbrot probabilities of ranks 0..n-1."""
    w: np.ndarray = 1.0 / (np.arange(n, dtype=np.float64) + offset) ** exponent
    return w / float(w.sum())


class TextGenerator:
    """Rows of tokens, their texts, shingles and edits (see the module docstring)."""

    def __init__(self, seed: int, vocabulary: int = 30_000) -> None:
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.words = np.array(make_vocabulary(vocabulary, seed), dtype=object)
        self.word_p = zipf_weights(len(self.words))
        self.chars = np.array(list(dict.fromkeys(HAN_CHARS)), dtype=object)
        self.char_p = zipf_weights(len(self.chars), exponent=0.9)
        self._word_list: list[str] = self.words.tolist()
        self._char_list: list[str] = self.chars.tolist()
        self._word_cum = np.cumsum(self.word_p).tolist()
        self._char_cum = np.cumsum(self.char_p).tolist()

    # --- rows ---------------------------------------------------------------------------------------------
    def english_rows(self, lengths: Sequence[int]) -> list[list[str]]:
        """One token list per length: Zipf words, lower case, sentences of 5–16 words ending in a period
        (``text`` capitalises the first word of each sentence)."""
        total = int(sum(lengths))
        ids = self.np_rng.choice(len(self.words), size=total, p=self.word_p)
        flat: list[str] = self.words[ids].tolist()
        sentences = iter(self.np_rng.integers(5, 17, size=total // 5 + len(lengths) + 1).tolist())
        out: list[list[str]] = []
        pos = 0
        for n in lengths:
            toks = flat[pos : pos + n]
            pos += n
            end = 0
            while end < n:
                end += next(sentences)
                if end > n:
                    end = n
                toks[end - 1] += "."
            out.append(toks)
        return out

    def chinese_rows(self, lengths: Sequence[int]) -> list[list[str]]:
        """One character list per length: Zipf characters, ``，`` every 5–12 and ``。`` at sentence ends."""
        total = int(sum(lengths))
        ids = self.np_rng.choice(len(self.chars), size=total, p=self.char_p)
        flat: list[str] = self.chars[ids].tolist()
        out: list[list[str]] = []
        pos = 0
        for n in lengths:
            chars = flat[pos : pos + n]
            pos += n
            toks: list[str] = []
            clause = 0
            limit = self.rng.randint(5, 12)
            for c in chars:
                toks.append(c)
                clause += 1
                if clause >= limit and len(toks) < n - 2:
                    toks.append("。" if self.rng.random() < 0.35 else "，")
                    clause = 0
                    limit = self.rng.randint(5, 12)
            toks.append("。")
            out.append(toks)
        return out

    @staticmethod
    def text(tokens: Sequence[str], zh: bool) -> str:
        if zh:
            return "".join(tokens)
        return ". ".join(sentence.capitalize() for sentence in " ".join(tokens).split(". "))

    # --- similarity ---------------------------------------------------------------------------------------
    @staticmethod
    def shingle_set(tokens: Sequence[str], zh: bool, n: int = 5) -> set[tuple[str, ...]]:
        """The 5-token shingles of a row as the dedup transform defines them (tokens are already lower case; a
        row of at most n tokens is one shingle)."""
        if len(tokens) <= n:
            return {tuple(tokens)} if tokens else set()
        return set(zip(*(tokens[i:] for i in range(n)), strict=False))

    @staticmethod
    def jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
        common = len(a & b)
        union = len(a) + len(b) - common
        return common / union if union else 1.0

    # --- edits --------------------------------------------------------------------------------------------
    def _random_token(self, zh: bool) -> str:
        if zh:
            return self.rng.choices(self._char_list, cum_weights=self._char_cum)[0]
        return self.rng.choices(self._word_list, cum_weights=self._word_cum)[0]

    def edit(self, tokens: list[str], zh: bool) -> list[str]:
        """``tokens`` after one random edit: substitute, insert, delete or swap neighbours (CJK edits touch
        characters only and never put two punctuation marks side by side)."""
        out = list(tokens)
        n = len(out)
        for _ in range(20):
            op = self.rng.random()
            i = self.rng.randrange(n)
            if zh and out[i] in PUNCT:
                continue
            if op < 0.4:
                out[i] = self._random_token(zh) + ("." if out[i].endswith(".") else "")
                return out
            if op < 0.65:
                out.insert(i, self._random_token(zh))
                return out
            if op < 0.85:
                if n > 6 and not (zh and 0 < i < n - 1 and out[i - 1] in PUNCT and out[i + 1] in PUNCT):
                    del out[i]
                    return out
                continue
            if i + 1 < n and not (zh and out[i + 1] in PUNCT):
                out[i], out[i + 1] = out[i + 1], out[i]
                return out
        out.append(self._random_token(zh))
        return out

    def near_copy(self, tokens: list[str], zh: bool, low: float, high: float) -> tuple[list[str], float]:
        """A copy of ``tokens`` edited until its Jaccard similarity to them is at most a target drawn in
        ``[low, high]`` and at least ``low``; returns the copy and its exact similarity (always < 1)."""
        target = self.rng.uniform(low, high)
        base = self.shingle_set(tokens, zh)
        current, similarity = list(tokens), 1.0
        misses = 0
        for _ in range(400):
            candidate = self.edit(current, zh)
            j = self.jaccard(base, self.shingle_set(candidate, zh))
            if j < low:
                misses += 1
                if misses > 8:
                    break
                continue
            current, similarity = candidate, j
            if similarity <= target:
                break
        if similarity >= 1.0:  # no edit kept it above ``low``: append one token (changes a single shingle)
            current = [*tokens, self._random_token(zh)]
            similarity = self.jaccard(base, self.shingle_set(current, zh))
        return current, similarity
