"""Row filters: length, language, script, repetition and symbol spam.

One ``filter`` step holds any of the five criteria; a row is dropped by the first criterion it fails (in the
order length, language, script, repetition, symbols), and the report counts removals by criterion with
examples that say why. Measures are defined in ``quality.py`` and ``language.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.language import CJK_SCRIPTS, SCRIPTS, detect_language, script_of
from llmops.datasets.transforms.columns import row_ids, row_texts
from llmops.datasets.transforms.quality import (
    count_tokens,
    duplicate_line_fractions,
    duplicate_ngram_char_fraction,
    hash_ellipsis_ratio,
    symbol_ratio,
    tokens,
    top_ngram_char_fraction,
)
from llmops.datasets.transforms.report import StepReport, clip

LANGUAGE_SAMPLE_CHARS = 4096
"""Language is detected on the first this many characters of a row (enough for the model, bounded cost)."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LengthFilter(_Config):
    """Keep rows whose length is within [min, max] (either bound optional)."""

    unit: Literal["chars", "tokens"] = "chars"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    tokenizer: Path | None = Field(
        default=None, description="a tokenizer.json (Hugging Face tokenizers) to count tokens with; unit=tokens only"
    )

    @model_validator(mode="after")
    def _check(self) -> LengthFilter:
        if self.min is None and self.max is None:
            raise ValueError("length filter needs min or max (or both)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"length filter min ({self.min}) is greater than max ({self.max})")
        if self.tokenizer is not None and self.unit != "tokens":
            raise ValueError("tokenizer is only used with unit: tokens")
        return self


class LanguageFilter(_Config):
    """Keep rows in ``allow`` (if given) and not in ``deny``. A detection below ``min_confidence`` counts as
    "und" (undetermined); list "und" in ``allow`` to keep such rows."""

    allow: list[str] | None = None
    deny: list[str] | None = None
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> LanguageFilter:
        if not self.allow and not self.deny:
            raise ValueError("language filter needs an allow or a deny list of ISO 639-1 codes (e.g. [en, zh])")
        return self


class ScriptFilter(_Config):
    """Keep rows whose dominant script is in ``allow`` (if given) and not in ``deny``. "CJK" stands for Han,
    Kana and Hangul."""

    allow: list[str] | None = None
    deny: list[str] | None = None

    @field_validator("allow", "deny")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out: list[str] = []
        for name in value:
            if name == "CJK":
                out.extend(sorted(CJK_SCRIPTS))
            elif name in SCRIPTS:
                out.append(name)
            else:
                raise ValueError(f"unknown script {name!r}; use one of {', '.join(SCRIPTS)} or CJK")
        return out

    @model_validator(mode="after")
    def _check(self) -> ScriptFilter:
        if not self.allow and not self.deny:
            raise ValueError("script filter needs an allow or a deny list (e.g. [Latin, CJK])")
        return self


class RepetitionFilter(_Config):
    """Gopher's repetition thresholds (see ``quality.py``); a measure above its maximum removes the row."""

    max_duplicate_line_fraction: float = Field(default=0.30, ge=0, le=1)
    max_duplicate_line_char_fraction: float = Field(default=0.20, ge=0, le=1)
    max_top_ngram_char_fraction: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    max_duplicate_ngram_char_fraction: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )


class SymbolFilter(_Config):
    """Remove symbol spam: symbol share of non-space characters, and Gopher's hash/ellipsis-to-word ratio."""

    max_symbol_ratio: float = Field(default=0.25, ge=0, le=1)
    max_hash_ellipsis_ratio: float | None = Field(default=0.1, ge=0)


class FilterConfig(_Config):
    """``filter`` step: any of the criteria; a row must pass all that are given."""

    length: LengthFilter | None = None
    language: LanguageFilter | None = None
    script: ScriptFilter | None = None
    repetition: RepetitionFilter | None = None
    symbols: SymbolFilter | None = None

    @model_validator(mode="after")
    def _check(self) -> FilterConfig:
        if not any((self.length, self.language, self.script, self.repetition, self.symbols)):
            raise ValueError("filter step needs at least one of: length, language, script, repetition, symbols")
        return self


@functools.lru_cache(maxsize=4)
def _tokenizer_counter(path: Path) -> Callable[[str], int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _length_failure(text: str, config: LengthFilter) -> str | None:
    if config.unit == "chars":
        n = len(text)
    elif config.tokenizer is not None:
        n = _tokenizer_counter(config.tokenizer)(text)
    else:
        n = count_tokens(text)
    if config.min is not None and n < config.min:
        return f"{n} {config.unit} < min {config.min}"
    if config.max is not None and n > config.max:
        return f"{n} {config.unit} > max {config.max}"
    return None


def _language_failure(text: str, config: LanguageFilter) -> str | None:
    code, confidence = detect_language(text[:LANGUAGE_SAMPLE_CHARS])
    if confidence < config.min_confidence:
        code = "und"
    if config.allow and code not in config.allow:
        return f"language {code} ({confidence:.2f}) not in allow {config.allow}"
    if config.deny and code in config.deny:
        return f"language {code} ({confidence:.2f}) in deny {config.deny}"
    return None


def _script_failure(text: str, config: ScriptFilter) -> str | None:
    script = script_of(text)
    if config.allow and script not in config.allow:
        return f"script {script} not in allow {config.allow}"
    if config.deny and script in config.deny:
        return f"script {script} in deny {config.deny}"
    return None


def _repetition_failure(text: str, config: RepetitionFilter) -> str | None:
    line_fraction, line_chars = duplicate_line_fractions(text)
    if line_fraction > config.max_duplicate_line_fraction:
        return f"duplicate lines {line_fraction:.2f} > {config.max_duplicate_line_fraction}"
    if line_chars > config.max_duplicate_line_char_fraction:
        return f"characters in duplicate lines {line_chars:.2f} > {config.max_duplicate_line_char_fraction}"
    words = tokens(text)
    for n, limit in sorted(config.max_top_ngram_char_fraction.items()):
        value = top_ngram_char_fraction(words, n)
        if value > limit:
            return f"top {n}-gram covers {value:.2f} of characters > {limit}"
    for n, limit in sorted(config.max_duplicate_ngram_char_fraction.items()):
        value = duplicate_ngram_char_fraction(words, n)
        if value > limit:
            return f"duplicate {n}-grams cover {value:.2f} of characters > {limit}"
    return None


def _symbol_failure(text: str, config: SymbolFilter) -> str | None:
    ratio = symbol_ratio(text)
    if ratio > config.max_symbol_ratio:
        return f"symbol ratio {ratio:.2f} > {config.max_symbol_ratio}"
    if config.max_hash_ellipsis_ratio is not None:
        value = hash_ellipsis_ratio(text)
        if value > config.max_hash_ellipsis_ratio:
            return f"hash/ellipsis per word {value:.2f} > {config.max_hash_ellipsis_ratio}"
    return None


def failure(text: str, config: FilterConfig) -> tuple[str, str] | None:
    """(criterion, why) of the first criterion ``text`` fails, or None when it passes all."""
    checks: list[tuple[str, Any, Callable[[str, Any], str | None]]] = [
        ("length", config.length, _length_failure),
        ("language", config.language, _language_failure),
        ("script", config.script, _script_failure),
        ("repetition", config.repetition, _repetition_failure),
        ("symbols", config.symbols, _symbol_failure),
    ]
    for criterion, sub, check in checks:
        if sub is not None:
            why = check(text, sub)
            if why is not None:
                return criterion, why
    return None


class Filter:
    """Row-wise step: drop the rows that fail a criterion; report removals by criterion with examples."""

    name = "filter"

    def __init__(self, config: FilterConfig) -> None:
        self.config = config

    def apply(self, table: pa.Table, kind: DatasetKind, report: StepReport) -> pa.Table:
        texts = row_texts(table, kind)
        ids = row_ids(table)
        keep: list[bool] = []
        for i, text in enumerate(texts):
            failed = failure(text, self.config)
            keep.append(failed is None)
            if failed is not None:
                criterion, why = failed
                report.removed += 1
                report.count(criterion)
                report.example({"row": ids[i], "reason": criterion, "detail": why, "text": clip(text)})
        out = table.filter(pa.array(keep, type=pa.bool_())) if not all(keep) else table
        report.rows_in += table.num_rows
        report.rows_out += out.num_rows
        return out
