"""Fixtures for the training tests: a small English + Chinese corpus and a tiny recipe config.

The corpus is generated (seeded) rather than read from the Debian packages so that the tests run on any machine;
the tiny config (a 2-layer Llama, 32-token context, a few hundred tokens of vocabulary) trains in seconds on one
thread. No test reaches the Hugging Face Hub: the offline switches are set before transformers is imported.
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
import random  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

EN_WORDS = (
    *("the", "model", "reads", "text", "and", "learns", "to", "predict", "the", "next", "token", "from"),
    *("the", "tokens", "before", "it", "while", "the", "registry", "keeps", "every", "version", "and"),
    *("the", "tracker", "records", "each", "run", "with", "its", "loss", "and", "learning", "rate"),
)
ZH_SENTENCES = (
    "模型读取文本并学习预测下一个词。",
    "注册表保存每一个版本。",
    "训练过程记录损失和学习率。",
    "床前明月光，疑是地上霜。",
    "举头望明月，低头思故乡。",
    "数据来自生产流量和用户反馈。",
)


def make_corpus(path: Path, *, docs: int = 160, seed: int = 0) -> Path:
    """``docs`` documents, three in four English, one in four Chinese, as JSONL with a ``text`` field."""
    rng = random.Random(seed)
    rows = []
    for i in range(docs):
        if i % 4 == 3:
            text = "".join(rng.choice(ZH_SENTENCES) for _ in range(rng.randint(3, 8)))
        else:
            text = " ".join(rng.choice(EN_WORDS) for _ in range(rng.randint(20, 60))).capitalize() + "."
        rows.append(json.dumps({"text": text}, ensure_ascii=False))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def tiny_config(sources: list[str], **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model": {
            "vocab_size": 320,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_layers": 2,
            "num_heads": 4,
            "num_kv_heads": 2,
            "context_length": 32,
        },
        "data": {"sources": sources, "validation_fraction": 0.1},
        "optim": {"lr": 0.01, "warmup_steps": 2},
        "steps": 20,
        "batch_size": 4,
        "threads": 1,
        "log_every": 2,
        "eval_every": 10,
        "checkpoint_every": 5,
        "run_name": "tiny-lm",
        "register_as": "tiny-lm",
    }
    config.update(overrides)
    return config


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "corpus.jsonl")
