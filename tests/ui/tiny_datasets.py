"""Small datasets for the dataset pages: a text dataset cleaned by a recipe, and a chat dataset to page through.

- ``web:1`` is imported from JSON lines: English rows with e-mail and IP addresses and runs of spaces, one row
  duplicated up to whitespace, three copies of a Chinese row, a one-character row and one long row.
- ``web:2`` is ``web:1`` cleaned by ``RECIPE`` (normalize, length filter, exact dedup, PII redaction, split),
  made by a tracked run, with the recipe and the transform report recorded.
- ``chat:1`` is 45 conversations (three pages of sample rows), each assistant answer long enough to be cut.

The cleaning goes through ``llmops.datasets.clean.clean_dataset``, as ``llmops data clean`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.datasets.clean import clean_dataset
from llmops.platform import Platform
from llmops.security.actor import local_admin

TEXT = "web"
CHAT = "chat"
CHAT_ROWS = 45
LONG_CHARS = 900
RECIPE = """\
name: tidy-web
steps:
  - normalize: {}
  - filter: {length: {min: 5}}
  - dedup: {kind: exact}
  - pii: {}
  - split: {fractions: {train: 0.8, validation: 0.1, test: 0.1}, seed: 0}
"""


@dataclass(frozen=True)
class Datasets:
    raw: str  # web:1
    clean: str  # web:2, parent web:1, with recipe and report
    chat: str  # chat:1
    run_id: str  # the run that made web:2


def text_rows() -> list[dict[str, Any]]:
    fox = "the quick brown fox jumps over the lazy dog."
    rows: list[dict[str, Any]] = [
        {"text": f"Row   number {i}: {fox} Mail user{i}@example.com, host 10.0.0.{i}"} for i in range(30)
    ]
    rows.append({"text": f"Row number 1: {fox} Mail user1@example.com, host 10.0.0.1"})
    rows += [{"text": "这是一个中文句子，用来测试语言识别和脚本统计的功能是否正常工作。"} for _ in range(3)]
    rows.append({"text": "x"})
    rows.append({"text": "A long row. " + "word " * ((LONG_CHARS - 12) // 5)})
    return rows


def chat_rows() -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": f"Answer {i}. " + "more detail " * 40},
            ]
        }
        for i in range(CHAT_ROWS)
    ]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def import_datasets(platform: Platform, root: Path, *, text: str = "small test dataset") -> Datasets:
    """Import and clean the datasets under ``root``; ``text`` goes into the free text (description, tags)."""
    admin = local_admin(via="cli")
    service = platform.datasets
    root.mkdir(parents=True, exist_ok=True)
    raw = service.import_path(
        admin, _jsonl(root / "web.jsonl", text_rows()), name=TEXT, description=text, tags={"note": text}
    ).ref
    recipe_path = root / "recipe.yaml"
    recipe_path.write_text(RECIPE, encoding="utf-8")
    result = clean_dataset(platform, admin, raw, recipe_path)
    clean, run_id = result.version.ref, result.run_id
    chat = service.import_path(admin, _jsonl(root / "chat.jsonl", chat_rows()), name=CHAT).ref
    return Datasets(raw=raw, clean=clean, chat=chat, run_id=run_id)
