"""The test model corpus is what it claims to be.

The registry tests trust these directories to be real checkpoints with known relationships (every tensor
changed, most tensors byte-identical, only q/v projections differ, real int8, a real pickle payload). If a
library upgrade silently changed one of those properties, the registry tests would still pass while no
longer testing anything; these checks catch that first. Everything is loaded back with the libraries that
consume such directories in the field, offline.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import SafetensorError, safe_open

from tests.registry import factory

TOKENIZER_FILES = set(factory.TOKENIZER_FILES)

# peft 0.21 calls a transformers 5 method that transformers now deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def read_tensors(model_dir: Path) -> dict[str, bytes]:
    """Name -> raw tensor bytes over every safetensors file of a directory (sharded or not)."""
    out: dict[str, bytes] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = f.get_tensor(name)
                out[name] = tensor.contiguous().view(torch.uint8).numpy().tobytes()
    return out


def tensor_dtypes(model_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                out[name] = f.get_slice(name).get_dtype()
    return out


def file_names(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_offline_switches_took_effect() -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once at import; conftest must have set it before that."""
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE


# --- tokenizer and base models ------------------------------------------------------------------------------
def test_tokenizer_round_trips_english_and_chinese(tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    assert file_names(tokenizer_dir) >= TOKENIZER_FILES
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert 250 <= len(tok) <= 300
    text = "A registry stores tensors. 模型注册表保存张量。"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == factory.BOS_EOS_TOKEN and tok.pad_token == factory.PAD_TOKEN


@pytest.mark.parametrize("fixture", ["llama_dir", "qwen2_dir", "gpt2_dir", "llama_sharded_dir"])
def test_causal_lm_loads_and_generates(fixture: str, request: pytest.FixtureRequest) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir: Path = request.getfixturevalue(fixture)
    assert {"config.json", "generation_config.json", "README.md"} | TOKENIZER_FILES <= file_names(model_dir)
    assert (model_dir / "README.md").read_text(encoding="utf-8").startswith("---\nlicense: apache-2.0\n")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir))
    assert model.config.vocab_size == len(tok)
    ids = tok("The model", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (1, ids.shape[1] + 3)


def test_gpt2_ties_lm_head(gpt2_dir: Path) -> None:
    names = read_tensors(gpt2_dir)
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names


def test_sharded_dir_has_an_index_and_the_same_tensors(llama_sharded_dir: Path, llama_dir: Path) -> None:
    shards = sorted(p.name for p in llama_sharded_dir.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2
    assert not (llama_sharded_dir / "model.safetensors").exists()
    index = json.loads((llama_sharded_dir / "model.safetensors.index.json").read_text(encoding="utf-8"))
    assert sorted(set(index["weight_map"].values())) == shards
    # Same seed as llama_dir: only the file layout differs, every tensor deduplicates against it.
    assert read_tensors(llama_sharded_dir) == read_tensors(llama_dir)


def test_bert_loads_as_an_encoder(bert_dir: Path) -> None:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(bert_dir))
    assert model.config.model_type == "bert"
    hidden = model(input_ids=torch.tensor([[1, 5, 9]])).last_hidden_state
    assert hidden.shape == (1, 3, 64)


def test_builds_are_deterministic(tmp_path: Path, llama_dir: Path, tokenizer_dir: Path) -> None:
    """Same seed, same bytes: the dedup tests compare digests across separately built directories."""
    again = factory.make_causal_lm(tmp_path / "again", "llama", tokenizer_dir=tokenizer_dir)
    assert sha256(again / "model.safetensors") == sha256(llama_dir / "model.safetensors")
    other = factory.make_causal_lm(tmp_path / "other", "llama", seed=7, tokenizer_dir=tokenizer_dir)
    assert sha256(other / "model.safetensors") != sha256(llama_dir / "model.safetensors")
    tok = factory.make_tokenizer(tmp_path / "tok")
    assert sha256(tok / "tokenizer.json") == sha256(tokenizer_dir / "tokenizer.json")


def test_bf16_base(tmp_path: Path, tokenizer_dir: Path) -> None:
    base = factory.make_causal_lm(tmp_path / "bf16", "llama", tokenizer_dir=tokenizer_dir, dtype=torch.bfloat16)
    assert set(tensor_dtypes(base).values()) == {"BF16"}
    tuned = factory.make_partial_training(base, tmp_path / "bf16-partial", lr=1e-2)
    assert set(tensor_dtypes(tuned).values()) == {"BF16"}
    a, b = read_tensors(base), read_tensors(tuned)
    assert any(a[n] != b[n] for n in a)


# --- derived versions ---------------------------------------------------------------------------------------
def test_continued_training_changes_every_tensor_slightly(llama_dir: Path, llama_continued_dir: Path) -> None:
    from safetensors.torch import load_file

    base = load_file(str(llama_dir / "model.safetensors"))
    tuned = load_file(str(llama_continued_dir / "model.safetensors"))
    assert base.keys() == tuned.keys()
    for name, tensor in base.items():
        assert not torch.equal(tensor, tuned[name]), name
        relative = (tuned[name] - tensor).norm() / tensor.norm()
        assert 0 < relative < 0.05, (name, float(relative))
    assert file_names(llama_continued_dir) >= TOKENIZER_FILES
    for name in TOKENIZER_FILES:
        assert sha256(llama_continued_dir / name) == sha256(llama_dir / name)
    card = (llama_continued_dir / "README.md").read_text(encoding="utf-8")
    assert f"base_model: {llama_dir.name}" in card


def test_partial_training_keeps_most_tensors_byte_identical(llama_dir: Path, llama_partial_dir: Path) -> None:
    base, tuned = read_tensors(llama_dir), read_tensors(llama_partial_dir)
    assert base.keys() == tuned.keys()
    prefix = factory.last_layer_prefix(llama_dir)
    changed = {name for name in base if base[name] != tuned[name]}
    assert changed == {name for name in base if name.startswith(prefix)}
    assert len(base) - len(changed) > len(base) / 2


def test_lora_adapter_is_real_and_loads(llama_dir: Path, lora_adapter_dir: Path) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    assert {"adapter_config.json", "adapter_model.safetensors"} <= file_names(lora_adapter_dir)
    config = json.loads((lora_adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["peft_type"] == "LORA" and sorted(config["target_modules"]) == sorted(factory.LORA_TARGETS)
    weights = load_file(str(lora_adapter_dir / "adapter_model.safetensors"))
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and all(bool(t.abs().sum() > 0) for t in lora_b)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(llama_dir)), str(lora_adapter_dir))
    assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 300)


def test_lora_merge_differs_only_in_q_and_v(llama_dir: Path, lora_merged_dir: Path) -> None:
    base, merged = read_tensors(llama_dir), read_tensors(lora_merged_dir)
    assert base.keys() == merged.keys()
    changed = {name for name in base if base[name] != merged[name]}
    expected = {n for n in base if n.endswith(("self_attn.q_proj.weight", "self_attn.v_proj.weight"))}
    assert changed == expected and expected


def test_int8_copy_is_compressed_tensors(llama_dir: Path, int8_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    qconfig = json.loads((int8_dir / "config.json").read_text(encoding="utf-8"))["quantization_config"]
    assert qconfig["quant_method"] == "compressed-tensors"
    assert qconfig["format"] == "int-quantized" and qconfig["quantization_status"] == "compressed"
    assert qconfig["config_groups"]["group_0"]["weights"]["num_bits"] == 8
    dtypes = tensor_dtypes(int8_dir)
    q_proj = "model.layers.0.self_attn.q_proj"
    assert dtypes[f"{q_proj}.weight"] == "I8" and dtypes[f"{q_proj}.weight_scale"] == "F32"
    assert dtypes["lm_head.weight"] == "F32" and dtypes["model.embed_tokens.weight"] == "F32"
    with safe_open(str(int8_dir / "model.safetensors"), framework="pt") as f:
        assert f.get_slice(f"{q_proj}.weight_scale").get_shape() == [64, 1]  # one scale per output channel
    ids = torch.tensor([[1, 2, 3, 4]])
    quantized = AutoModelForCausalLM.from_pretrained(str(int8_dir))(input_ids=ids).logits
    original = AutoModelForCausalLM.from_pretrained(str(llama_dir))(input_ids=ids).logits
    assert torch.allclose(quantized, original, atol=0.05)


def test_asymmetric_int8_stores_zero_points(tmp_path: Path, llama_dir: Path) -> None:
    out = factory.make_int8_copy(llama_dir, tmp_path / "asym", symmetric=False)
    dtypes = tensor_dtypes(out)
    assert dtypes["model.layers.0.mlp.up_proj.weight_zero_point"] == "I8"


# --- pickles ------------------------------------------------------------------------------------------------
def test_pickle_checkpoint_is_a_legitimate_pickle(pickle_dir: Path) -> None:
    from transformers import AutoConfig

    assert {"config.json", "pytorch_model.bin"} <= file_names(pickle_dir)
    assert not list(pickle_dir.glob("*.safetensors"))
    state = torch.load(pickle_dir / "pytorch_model.bin", weights_only=True)
    assert state and all(isinstance(t, torch.Tensor) for t in state.values())
    assert AutoConfig.from_pretrained(str(pickle_dir)).model_type == "llama"


UNSAFE_LOADERS = {
    "raw": "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))",
    "torch": "import sys, torch; torch.load(sys.argv[1], weights_only=False)",
}


@pytest.mark.parametrize("fmt", ["raw", "torch"])
def test_malicious_pickle_is_refused_by_weights_only(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "pwned"
    path = factory.make_malicious_pickle(tmp_path / "evil.bin", marker, fmt=fmt)  # type: ignore[arg-type]
    assert not marker.exists(), "writing the payload must not run it"
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(path, weights_only=True)
    assert not marker.exists()

    # The corpus is real: an unrestricted load runs the payload. Done in a child process so that the test
    # process itself never unpickles it.
    subprocess.run([sys.executable, "-c", UNSAFE_LOADERS[fmt], str(path)], check=True, timeout=60)
    assert marker.exists()


# --- MiniLM and the broken corpus ---------------------------------------------------------------------------
def test_minilm_copy_encodes(minilm_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    assert {"modules.json", "config_sentence_transformers.json", "model.safetensors"} <= file_names(minilm_dir)
    assert (minilm_dir / "1_Pooling" / "config.json").is_file()
    copy = Path(shutil.copytree(minilm_dir, tmp_path / "minilm"))
    vector = SentenceTransformer(str(copy), device="cpu").encode("A registry stores model versions.")
    assert vector.shape == (384,)


def test_broken_dirs_are_broken_as_documented(broken_dirs: dict[str, Path]) -> None:
    assert set(broken_dirs) == {
        "invalid_config_json",
        "missing_shard",
        "index_parent_traversal",
        "index_absolute_path",
        "symlink_outside",
        "truncated_safetensors",
        "header_overflow",
        "empty",
        "readme_only",
    }
    with pytest.raises(json.JSONDecodeError):
        json.loads((broken_dirs["invalid_config_json"] / "config.json").read_text(encoding="utf-8"))
    missing = broken_dirs["missing_shard"]
    index = json.loads((missing / "model.safetensors.index.json").read_text(encoding="utf-8"))
    assert [s for s in set(index["weight_map"].values()) if not (missing / s).exists()]

    traversal = broken_dirs["index_parent_traversal"]
    index = json.loads((traversal / "model.safetensors.index.json").read_text(encoding="utf-8"))
    assert "../outside.safetensors" in index["weight_map"].values()
    assert (traversal / "../outside.safetensors").is_file()  # following it would escape and succeed
    index = json.loads((broken_dirs["index_absolute_path"] / "model.safetensors.index.json").read_text())
    assert "/abs.safetensors" in index["weight_map"].values()

    link = broken_dirs["symlink_outside"] / "model.safetensors"
    assert link.is_symlink() and not link.resolve().is_relative_to(broken_dirs["symlink_outside"].resolve())

    for name in ("truncated_safetensors", "header_overflow"):
        with pytest.raises(SafetensorError):
            read_tensors(broken_dirs[name])

    assert not any(broken_dirs["empty"].iterdir())
    assert file_names(broken_dirs["readme_only"]) == {"README.md"}
