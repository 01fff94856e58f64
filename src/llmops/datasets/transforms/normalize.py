"""Unicode and whitespace normalisation.

Order matters for idempotence: control and invisible format characters go first (removing one can bring a
base letter next to a combining mark), then NFKC (folds compatibility forms: fullwidth letters and digits,
ligatures, non-breaking and ideographic spaces), then whitespace, which NFKC may have produced.

Newlines are kept as structure: CR LF, CR, U+2028 and U+2029 become LF; spaces around line ends go; runs of
blank lines shrink to ``max_blank_lines``. Inside a line, runs of spaces and tabs become one space
(leading indentation too, unless ``preserve_indentation``).
"""

from __future__ import annotations

import re
import unicodedata

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.columns import map_texts, row_ids
from llmops.datasets.transforms.report import StepReport, clip

KEEP_FORMAT = frozenset({"\u200c", "\u200d"})
"""Zero-width non-joiner and joiner carry meaning (Persian words, emoji sequences); other format characters
(zero-width space, BOM, soft hyphen, bidi controls) are removed."""

_NEWLINES = re.compile(r"\r\n|[\r\u2028\u2029\x0b\x0c\x85]")
_HSPACE = re.compile(r"[^\S\n]+")


class NormalizeConfig(BaseModel):
    """``normalize`` step: what to normalise (all on by default)."""

    model_config = ConfigDict(extra="forbid")

    nfkc: bool = True
    remove_control: bool = True
    collapse_whitespace: bool = True
    max_blank_lines: int = Field(default=1, ge=0, description="blank lines kept between paragraphs")
    preserve_indentation: bool = False


def _remove_control(text: str) -> str:
    out = []
    for char in text:
        if char in "\n\t":
            out.append(char)
            continue
        category = unicodedata.category(char)
        if category == "Cc" or (category == "Cf" and char not in KEEP_FORMAT):
            continue
        out.append(char)
    return "".join(out)


def _collapse_whitespace(text: str, max_blank_lines: int, preserve_indentation: bool) -> str:
    lines = text.split("\n")
    cleaned: list[str] = []
    for line in lines:
        line = line.rstrip()
        if preserve_indentation:
            stripped = line.lstrip()
            indent = line[: len(line) - len(stripped)]
            line = indent + _HSPACE.sub(" ", stripped)
        else:
            line = _HSPACE.sub(" ", line).strip()
        cleaned.append(line)
    out: list[str] = []
    blanks = 0
    for line in cleaned:
        if line.strip() == "":
            blanks += 1
            if blanks > max_blank_lines:
                continue
            out.append("")
        else:
            blanks = 0
            out.append(line)
    result = "\n".join(out)
    return result.strip("\n") if preserve_indentation else result.strip()


def normalize_text(text: str, config: NormalizeConfig | None = None) -> str:
    """``text`` normalised as ``config`` says (defaults: everything on, at most one blank line)."""
    config = config or NormalizeConfig()
    text = _NEWLINES.sub("\n", text)
    if config.remove_control:
        text = _remove_control(text)
    if config.nfkc:
        text = unicodedata.normalize("NFKC", text)
        text = _NEWLINES.sub("\n", text)
    if config.collapse_whitespace:
        text = _collapse_whitespace(text, config.max_blank_lines, config.preserve_indentation)
    return text


class Normalize:
    """Row-wise step: normalise every text (each chat message's content); reports changed rows."""

    name = "normalize"

    def __init__(self, config: NormalizeConfig) -> None:
        self.config = config

    def _edit(self, _row: int, text: str) -> str:
        return normalize_text(text, self.config)

    def apply(self, table: pa.Table, kind: DatasetKind, report: StepReport) -> pa.Table:
        table, changed, first = map_texts(table, kind, self._edit)
        report.rows_in += table.num_rows
        report.rows_out += table.num_rows
        ids = row_ids(table)
        for i, did in enumerate(changed):
            if did:
                report.changed += 1
                if report.wants_examples:
                    before, after = first[i]
                    report.example({"row": ids[i], "before": clip(before), "after": clip(after)})
        return table
