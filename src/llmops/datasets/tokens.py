"""Token statistics of a dataset on a registered model's tokenizer.

The question this answers: how many tokens does a row cost on this tokenizer, and how much more per
character does a Chinese or Japanese text cost than an English one? Rows are tokenized without special
tokens and grouped by detected language and by script; each group reports tokens per character and that
figure relative to English (for scripts: relative to Latin). Large datasets are measured on an even sample
of ``max_rows`` rows (every k-th row), because language identification dominates the cost.

The tokenizer is loaded from the registry through the model cache (verified files, no code from the model
directory: ``trust_remote_code`` stays off).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llmops.datasets.kinds import document_texts, text_columns
from llmops.datasets.schemas import TokenGroup, TokenStats
from llmops.datasets.stats import LANGUAGE_CHARS, LengthSketch
from llmops.errors import InvalidInput

if TYPE_CHECKING:
    from llmops.datasets.service import DatasetService
    from llmops.registry.cache import ModelCache

DEFAULT_MAX_ROWS = 50_000
TOKENIZE_BATCH = 512
SANE_MODEL_MAX_LENGTH = 10_000_000  # transformers uses ~1e30 for "no limit"


@dataclass
class _Group:
    rows: int = 0
    characters: int = 0
    tokens: int = 0

    def add(self, chars: int, tokens: int) -> None:
        self.rows += 1
        self.characters += chars
        self.tokens += tokens

    @property
    def per_char(self) -> float | None:
        return self.tokens / self.characters if self.characters else None


def load_tokenizer(model_cache: ModelCache, tokenizer_ref: str) -> Any:
    """A transformers tokenizer from a registry version's files."""
    from transformers import AutoTokenizer

    path = model_cache.materialize(tokenizer_ref)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises many kinds for a directory without a tokenizer
        raise InvalidInput(
            f"{tokenizer_ref} has no tokenizer that transformers can load ({type(exc).__name__}: {str(exc)[:300]}); "
            "name a model version that ships tokenizer.json or tokenizer_config.json"
        ) from None


def _sample(datasets: DatasetService, ref: str, step: int) -> Iterator[list[str]]:
    version = datasets.get(ref)
    index = 0
    for batch in datasets.iter_batches(version.ref, columns=list(text_columns(version.kind)), batch_size=4096):
        texts = document_texts(batch, version.kind)
        picked = [t for i, t in enumerate(texts, start=index) if i % step == 0]
        index += len(texts)
        for start in range(0, len(picked), TOKENIZE_BATCH):
            yield picked[start : start + TOKENIZE_BATCH]


def _groups(groups: dict[str, _Group], reference: str) -> list[TokenGroup]:
    base = groups.get(reference)
    base_rate = base.per_char if base else None
    out = []
    for name, g in sorted(groups.items(), key=lambda kv: (-kv[1].rows, kv[0])):
        rate = g.per_char
        out.append(
            TokenGroup(
                group=name,
                rows=g.rows,
                characters=g.characters,
                tokens=g.tokens,
                tokens_per_char=round(rate, 6) if rate is not None else None,
                ratio_vs_english=round(rate / base_rate, 4) if rate is not None and base_rate else None,
            )
        )
    return out


def token_stats(
    datasets: DatasetService,
    model_cache: ModelCache,
    ref: str,
    tokenizer_ref: str,
    *,
    max_length: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> TokenStats:
    """Token counts of ``ref``'s rows on ``tokenizer_ref``'s tokenizer, by language and by script.

    ``max_length`` defaults to the tokenizer's ``model_max_length`` when it declares a real one.
    """
    from llmops.datasets.language import detect_language, script_of

    if max_length is not None and max_length < 1:
        raise InvalidInput("max_length must be at least 1", details={"field": "max_length"})
    if max_rows < 1:
        raise InvalidInput("max_rows must be at least 1", details={"field": "max_rows"})
    version = datasets.get(ref)
    tokenizer = load_tokenizer(model_cache, tokenizer_ref)
    if max_length is None:
        declared = getattr(tokenizer, "model_max_length", None)
        max_length = int(declared) if isinstance(declared, int | float) and declared < SANE_MODEL_MAX_LENGTH else None
    step = max(1, math.ceil(version.rows / max_rows))
    languages: dict[str, _Group] = {}
    scripts: dict[str, _Group] = {}
    total = _Group()
    lengths = LengthSketch()
    over = 0
    for texts in _sample(datasets, version.ref, step):
        ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
        counts = np.array([len(x) for x in ids], dtype=np.int64)
        lengths.update(counts)
        if max_length is not None:
            over += int((counts > max_length).sum())
        for text, n in zip(texts, counts.tolist(), strict=True):
            head = text[:LANGUAGE_CHARS]
            chars = len(text)
            total.add(chars, n)
            languages.setdefault(detect_language(head)[0], _Group()).add(chars, n)
            scripts.setdefault(script_of(head), _Group()).add(chars, n)
    rate = total.per_char
    return TokenStats(
        ref=version.ref,
        tokenizer=tokenizer_ref,
        rows=version.rows,
        rows_measured=total.rows,
        tokens=total.tokens,
        characters=total.characters,
        tokens_per_char=round(rate, 6) if rate is not None else None,
        max_length=max_length,
        rows_over_max_length=over if max_length is not None else None,
        share_over_max_length=round(over / total.rows, 6) if max_length is not None and total.rows else None,
        by_language=_groups(languages, "en"),
        by_script=_groups(scripts, "Latin"),
        token_lengths=lengths.summary(),
    )
