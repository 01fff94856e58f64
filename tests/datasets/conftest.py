"""Fixtures of the dataset tests: small source files of every format and kind, written per test.

transformers and huggingface_hub read the offline switches once at import, so they are set here before any
test module imports them (the token statistics tests load a tokenizer from a registered model).
"""

from __future__ import annotations

import os

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

TEXT_ROWS: list[dict[str, Any]] = [
    {"text": "The quick brown fox jumps over the lazy dog.", "id": 1},
    {"text": "模型注册表保存模型的每一个版本。", "id": 2},
    {"text": "Bonjour tout le monde, ceci est un petit texte en français.", "id": 3},
]
PC_ROWS: list[dict[str, Any]] = [
    {"prompt": "2+2=", "completion": "4"},
    {"prompt": "Capital of France?", "completion": "Paris"},
]
CHAT_ROWS: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"}]},
    {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "why?"},
            {"role": "assistant", "content": "because"},
        ],
        "source": "x",
    },
]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def text_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "text.jsonl", TEXT_ROWS)


@pytest.fixture
def chat_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "chat.jsonl", CHAT_ROWS)


@pytest.fixture
def pc_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "pc.jsonl", PC_ROWS)
