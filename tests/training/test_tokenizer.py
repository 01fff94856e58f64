"""The byte-level BPE tokenizer: transformers loads it, and English, Chinese and unseen text round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from llmops.training.tokenizer import SPECIAL_TOKENS, train_tokenizer
from tests.training.conftest import EN_WORDS, ZH_SENTENCES

SAMPLES = (
    "The model reads text and learns to predict the next token.",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "Mixed 混合 text with numbers 12345, tabs\tand\nnewlines  and double  spaces.",
    "Never seen: Ωμέγα, кириллица, 한국어, emoji 🤖, and rare 齉龘.",
    "  leading and trailing spaces  ",
)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [" ".join(EN_WORDS)] * 20 + ["".join(ZH_SENTENCES)] * 20
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=400, model_max_length=64)


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(tokenizer_dir: Path, text: str) -> None:
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids
    assert tok.decode(ids) == text


def test_merges_learned_for_both_languages(tokenizer_dir: Path) -> None:
    """Byte fallback alone would give one token per UTF-8 byte; trained merges must do better in both scripts."""
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    english, chinese = "the model reads text", "注册表保存每一个版本。"
    assert len(tok(english, add_special_tokens=False)["input_ids"]) < len(english.encode()) / 2
    assert len(tok(chinese, add_special_tokens=False)["input_ids"]) < len(chinese.encode()) / 2


def test_special_tokens_and_chat_template(tokenizer_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tok.eos_token == tok.bos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert tok.model_max_length == 64
    text = tok.apply_chat_template(
        [{"role": "user", "content": "你好, hello"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\n你好, hello<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")  # special tokens are single tokens, not split


def test_vocab_too_small_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size 100"):
        train_tokenizer(["text"], tmp_path, vocab_size=100)
