"""Session fixtures for the registry tests: real, tiny Hugging Face model directories built once per session.

Each fixture builds its directory on first use into ``tmp_path_factory`` with :mod:`tests.registry.factory`
and returns its path. The directories are shared by every test of the session, so tests must treat them as
read-only and copy one (``shutil.copytree``) before changing it; the same holds for ``minilm_dir``, which
points into site-packages.

No test may reach the Hugging Face Hub. The offline switches are set here with ``os.environ.setdefault`` when
pytest imports this conftest, i.e. before this package imports transformers or huggingface_hub (which read
them once, at import) and without ``monkeypatch``, which is function-scoped and would be too late for the
session fixtures. ``setdefault`` leaves an explicit value from the caller's environment alone.
"""

from __future__ import annotations

import os

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.registry import factory  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokenizer.json, tokenizer_config.json, special_tokens_map.json (byte-level BPE, 300 tokens)."""
    return factory.make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """The base of every derived version: tiny Llama, single model.safetensors."""
    return factory.make_causal_lm(tmp_path_factory.mktemp("llama"), "llama", tokenizer_dir=tokenizer_dir)


@pytest.fixture(scope="session")
def llama_sharded_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """The same weights as ``llama_dir`` (same seed) split into several shards plus an index."""
    return factory.make_causal_lm(
        tmp_path_factory.mktemp("llama-sharded"), "llama", tokenizer_dir=tokenizer_dir, max_shard_size="50KB"
    )


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    return factory.make_causal_lm(tmp_path_factory.mktemp("qwen2"), "qwen2", tokenizer_dir=tokenizer_dir)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """GPT-2 ties lm_head to the embedding, so its safetensors holds no lm_head.weight."""
    return factory.make_causal_lm(tmp_path_factory.mktemp("gpt2"), "gpt2", tokenizer_dir=tokenizer_dir)


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    return factory.make_bert(tmp_path_factory.mktemp("bert"), tokenizer_dir=tokenizer_dir)


@pytest.fixture(scope="session")
def llama_continued_dir(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Path:
    """``llama_dir`` after 3 AdamW steps on all parameters: every tensor changed slightly."""
    return factory.make_continued_training(llama_dir, tmp_path_factory.mktemp("llama-continued"))


@pytest.fixture(scope="session")
def llama_partial_dir(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Path:
    """``llama_dir`` with only its last layer trained: all other tensors byte-identical to the base."""
    return factory.make_partial_training(llama_dir, tmp_path_factory.mktemp("llama-partial"))


@pytest.fixture(scope="session")
def lora_adapter_dir(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Path:
    return factory.make_lora_adapter(llama_dir, tmp_path_factory.mktemp("lora-adapter"))


@pytest.fixture(scope="session")
def lora_merged_dir(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path, lora_adapter_dir: Path) -> Path:
    """``llama_dir`` with ``lora_adapter_dir`` merged in: only q_proj/v_proj weights differ from the base."""
    return factory.make_lora_merge(llama_dir, lora_adapter_dir, tmp_path_factory.mktemp("lora-merged"))


@pytest.fixture(scope="session")
def int8_dir(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Path:
    """``llama_dir`` as a compressed-tensors INT8 W8A8 checkpoint."""
    return factory.make_int8_copy(llama_dir, tmp_path_factory.mktemp("llama-int8"))


@pytest.fixture(scope="session")
def pickle_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """config.json + a legitimate pytorch_model.bin (torch.save of a state dict) + tokenizer files."""
    return factory.make_pickle_checkpoint(tmp_path_factory.mktemp("pickle"), tokenizer_dir=tokenizer_dir)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The shipped all-MiniLM-L6-v2 directory, in site-packages: copy it before modifying it."""
    return factory.minilm_dir()


@pytest.fixture(scope="session")
def broken_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> directory with exactly one defect; see :func:`factory.make_broken_dirs`."""
    return factory.make_broken_dirs(tmp_path_factory.mktemp("broken"))
