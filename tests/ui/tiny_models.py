"""A small model family for the model pages, made of tiny real Hugging Face models.

The directories are built with :mod:`tests.registry.factory` (the same builders as the registry tests),
once per test process however many modules ask, and imported into a platform as a family the pages can
show: a base, a fine-tune of its last layer recorded with the run that made it, a LoRA merge, and alias
moves with reasons.

The offline switches are set before the factory is imported (see ``tests/registry/conftest.py``).
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

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from llmops.platform import Platform  # noqa: E402
from llmops.security.actor import local_admin  # noqa: E402

MODEL = "tiny-llama"
MERGED = "tiny-llama-merged"
DATASET = "corpus:1"


@dataclass(frozen=True)
class ModelDirs:
    base: Path
    finetune: Path  # the base with only its last layer trained
    merged: Path  # the base with a LoRA adapter on q_proj/v_proj merged in


@dataclass(frozen=True)
class Family:
    base: str  # tiny-llama:1, imported; production, and staging before the move
    finetune: str  # tiny-llama:2, base tiny-llama:1, made by run_id; staging after the move
    merged: str  # tiny-llama-merged:1, base tiny-llama:1, derivation merge
    run_id: str


_built: list[ModelDirs] = []


def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> ModelDirs:
    """The three directories, built on first use (a few seconds, most of it importing transformers)."""
    if not _built:
        from tests.registry import factory

        root = tmp_path_factory.mktemp("tiny-models")
        tokenizer = factory.make_tokenizer(root / "tokenizer")
        base = factory.make_causal_lm(root / "base", "llama", tokenizer_dir=tokenizer)
        finetune = factory.make_partial_training(base, root / "finetune")
        adapter = factory.make_lora_adapter(base, root / "adapter")
        merged = factory.make_lora_merge(base, adapter, root / "merged")
        _built.append(ModelDirs(base, finetune, merged))
    return _built[0]


def import_family(platform: Platform, dirs: ModelDirs, *, text: str = "tiny test model") -> Family:
    """Import the family; ``text`` goes wherever the registry keeps free text (description, tags, reasons)."""
    admin = local_admin(via="cli")
    registry = platform.registry
    with platform.start_run(kind="finetune", name="tune-last-layer", params={"lr": 1e-4}) as run:
        run.add_input("dataset_version", DATASET)
    base = registry.import_model(admin, dirs.base, name=MODEL, description=text, tags={"note": text}).version.ref
    finetune = registry.import_model(admin, dirs.finetune, name=MODEL, base=base, run_id=run.id).version.ref
    merged = registry.import_model(admin, dirs.merged, name=MERGED, base=base, derivation="merge").version.ref
    registry.set_alias(admin, base, "staging", reason=f"first cut: {text}")
    registry.set_alias(admin, base, "production", reason="baseline")
    registry.set_alias(admin, finetune, "staging", reason="last layer tuned")
    return Family(base=base, finetune=finetune, merged=merged, run_id=run.id)
