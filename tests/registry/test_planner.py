"""The memory planner against hand-computed numbers for known models, and its estimate against transformers.

Every expected value is written as the arithmetic that produces it, from published configs and published
parameter counts, never copied from the implementation. The cross-checks build the real transformers
models on the meta device (shapes only, no memory) and count their parameters.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from llmops.errors import InvalidInput
from llmops.registry.planner import ModelShape, estimate_parameters, lora_trainable_parameters, pipeline_bubble, plan

GIB = 2**30
MIB = 2**20

LLAMA2_7B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "max_position_embeddings": 4096,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "rms_norm_eps": 1e-05,
    "tie_word_embeddings": False,
    "vocab_size": 32000,
}
LLAMA3_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "vocab_size": 128256,
}
QWEN2_05B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
}
GPT2_SMALL: dict[str, Any] = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 768,
    "n_head": 12,
    "n_layer": 12,
    "n_positions": 1024,
    "vocab_size": 50257,
}
BERT_BASE: dict[str, Any] = {
    "architectures": ["BertForMaskedLM"],
    "model_type": "bert",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}
GEMMA_7B: dict[str, Any] = {
    "architectures": ["GemmaForCausalLM"],
    "model_type": "gemma",
    "head_dim": 256,
    "hidden_size": 3072,
    "intermediate_size": 24576,
    "max_position_embeddings": 8192,
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 16,
    "vocab_size": 256000,
}

LLAMA2_7B_PARAMS = 6_738_415_616
LLAMA3_8B_PARAMS = 8_030_261_248


# --- parameter estimates, by hand ---------------------------------------------------------------------


def test_llama2_7b_parameters_by_hand() -> None:
    embed = 32000 * 4096
    attention = 4 * 4096 * 4096  # q, k, v, o: 32 KV heads = MHA
    mlp = 3 * 4096 * 11008  # gate, up, down
    norms = 2 * 4096
    expected = embed + 32 * (attention + mlp + norms) + 4096 + embed  # final norm, untied lm_head
    assert expected == LLAMA2_7B_PARAMS
    assert estimate_parameters(ModelShape.from_config(LLAMA2_7B)) == LLAMA2_7B_PARAMS


def test_llama3_8b_parameters_by_hand() -> None:
    embed = 128256 * 4096
    attention = 4096 * 4096 + 2 * 4096 * (8 * 128) + 4096 * 4096  # GQA: k and v project to 8 heads × 128
    mlp = 3 * 4096 * 14336
    expected = embed + 32 * (attention + mlp + 2 * 4096) + 4096 + embed
    assert expected == LLAMA3_8B_PARAMS
    assert estimate_parameters(ModelShape.from_config(LLAMA3_8B)) == LLAMA3_8B_PARAMS


def test_qwen2_05b_parameters_by_hand() -> None:
    attention = (896 * 896 + 896) + 2 * (896 * 128 + 128) + 896 * 896  # q/k/v biases, o without
    mlp = 3 * 896 * 4864
    expected = 151936 * 896 + 24 * (attention + mlp + 2 * 896) + 896  # tied: no lm_head
    assert expected == 494_032_768
    assert estimate_parameters(ModelShape.from_config(QWEN2_05B)) == 494_032_768


def test_gpt2_small_parameters_by_hand() -> None:
    shape = ModelShape.from_config(GPT2_SMALL)
    assert shape.intermediate_size == 4 * 768  # n_inner absent = 4 × n_embd
    embeddings = 50257 * 768 + 1024 * 768  # wte + wpe
    attention = (768 * 3 * 768 + 3 * 768) + (768 * 768 + 768)  # c_attn, c_proj
    mlp = (768 * 3072 + 3072) + (3072 * 768 + 768)  # c_fc, c_proj
    norms = 2 * 2 * 768  # ln_1, ln_2 with bias
    expected = embeddings + 12 * (attention + mlp + norms) + 2 * 768  # ln_f; lm_head tied
    assert expected == 124_439_808
    assert estimate_parameters(shape) == 124_439_808


def test_bert_base_parameters_by_hand() -> None:
    embeddings = (30522 + 512 + 2) * 768 + 2 * 768  # word, position, token type, LayerNorm
    attention = 4 * (768 * 768 + 768)
    mlp = (768 * 3072 + 3072) + (3072 * 768 + 768)
    layer = attention + mlp + 2 * 2 * 768
    pooler = 768 * 768 + 768
    expected = embeddings + 12 * layer + pooler
    assert expected == 109_482_240
    assert estimate_parameters(ModelShape.from_config(BERT_BASE)) == 109_482_240


def test_gemma_head_dim_comes_from_the_config() -> None:
    shape = ModelShape.from_config(GEMMA_7B)
    assert shape.head_dim == 256  # not 3072 // 16 = 192
    assert shape.tie_word_embeddings  # Gemma ties by default when the key is absent
    attention = 4 * 3072 * (16 * 256)
    expected = 256000 * 3072 + 28 * (attention + 3 * 3072 * 24576 + 2 * 3072) + 3072
    assert expected == 8_537_680_896  # google/gemma-7b
    assert estimate_parameters(shape) == expected
    p = plan(shape, parameters=expected, context=8192)
    assert p.kv_bytes_per_token == 28 * 16 * 256 * 2 * 2


# --- parameter estimates against transformers ---------------------------------------------------------


def _count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta_model(config: dict[str, Any], *, encoder: bool = False) -> tuple[dict[str, Any], int]:
    """Build the transformers model on the meta device; return its full config dict and parameter count."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    values = {k: v for k, v in config.items() if k not in ("architectures", "model_type")}
    cfg = AutoConfig.for_model(config["model_type"], **values)
    with torch.device("meta"):
        factory: Any = AutoModel if encoder else AutoModelForCausalLM
        model = factory.from_config(cfg)
    return cfg.to_dict(), _count(model)


@pytest.mark.parametrize(
    ("config", "encoder"),
    [(LLAMA2_7B, False), (LLAMA3_8B, False), (QWEN2_05B, False), (GPT2_SMALL, False), (BERT_BASE, True)],
    ids=["llama2-7b", "llama3-8b", "qwen2-0.5b", "gpt2", "bert-base"],
)
def test_estimate_matches_transformers_full_size(config: dict[str, Any], encoder: bool) -> None:
    full_config, actual = _meta_model(config, encoder=encoder)
    assert estimate_parameters(ModelShape.from_config(config)) == actual
    assert estimate_parameters(ModelShape.from_config(full_config)) == actual  # the dict transformers writes


TINY: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "llama", **TINY, "num_key_value_heads": 2, "vocab_size": 1000, "attention_bias": True,
         "mlp_bias": True},
        {"model_type": "mistral", **TINY, "num_key_value_heads": 2, "vocab_size": 1000},
        {"model_type": "mixtral", **TINY, "num_key_value_heads": 2, "vocab_size": 1000, "num_local_experts": 4},
        {"model_type": "qwen2", **TINY, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False},
        {"model_type": "qwen3", **TINY, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 1000},
        {"model_type": "gemma", **TINY, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 1000},
        {"model_type": "gemma2", **TINY, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 1000},
        {"model_type": "gemma3_text", **TINY, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 1000},
        {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_inner": 96, "n_positions": 128,
         "vocab_size": 1000, "bos_token_id": 0, "eos_token_id": 0},
    ],
    ids=lambda c: c["model_type"],
)  # fmt: skip
def test_estimate_matches_transformers_tiny_decoders(config: dict[str, Any]) -> None:
    full_config, actual = _meta_model(config)
    assert estimate_parameters(ModelShape.from_config(full_config)) == actual


def test_estimate_matches_transformers_roberta() -> None:
    full_config, actual = _meta_model({"model_type": "roberta", **TINY, "vocab_size": 1000}, encoder=True)
    assert estimate_parameters(ModelShape.from_config(full_config)) == actual


def test_multimodal_text_config_counts_the_language_model() -> None:
    import torch
    from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    text = LlamaConfig(**TINY, num_key_value_heads=2, vocab_size=1000)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    cfg = LlavaConfig(text_config=text.to_dict(), vision_config={**vision, "image_size": 28, "patch_size": 14})
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(cfg)
    language = sum(
        p.numel() for name, p in model.named_parameters() if "vision_tower" not in name and "projector" not in name
    )
    config = cfg.to_dict()
    config["architectures"] = ["LlavaForConditionalGeneration"]
    shape = ModelShape.from_config(config)
    assert shape.architecture == "LlavaForConditionalGeneration"
    assert shape.model_type == "llama"
    assert (shape.num_layers, shape.hidden_size, shape.num_kv_heads) == (2, 64, 2)
    assert estimate_parameters(shape) == language


# --- serving plan ---------------------------------------------------------------------------------------


def test_llama2_7b_serving_plan_by_hand() -> None:
    p = plan(ModelShape.from_config(LLAMA2_7B), parameters=LLAMA2_7B_PARAMS)
    assert p.context == 4096 and p.batch == 1  # context defaults to max_position_embeddings
    assert p.weights_bytes == {
        "fp32": 4 * 6_738_415_616,
        "bf16": 2 * 6_738_415_616,
        "int8": 6_738_415_616,
        # 4 bits plus one fp16 scale per 128 weights: 0.5 + 2/128 bytes = 33/64 bytes per parameter.
        "int4": 6_738_415_616 // 2 + 6_738_415_616 * 2 // 128,
    }
    assert p.weights_bytes["int4"] == 3_474_495_552
    assert p.kv_bytes_per_token == 32 * 32 * 128 * 2 * 2 == 524_288
    assert p.kv_bytes_total == 524_288 * 4096 * 1 == 2 * GIB
    weights = 13_476_831_232
    assert p.serving_weights_bytes == weights
    assert p.activation_headroom_bytes == (weights + 2 * GIB) // 10 == 1_562_431_488
    assert p.serving_total_bytes == weights + 2 * GIB + 1_562_431_488 == 17_186_746_368
    assert p.kv_precision == "bf16"


def test_llama3_8b_kv_cache_with_gqa() -> None:
    p = plan(ModelShape.from_config(LLAMA3_8B), parameters=LLAMA3_8B_PARAMS, context=8192, batch=4)
    assert p.kv_bytes_per_token == 32 * 8 * 128 * 2 * 2 == 131_072
    assert p.kv_bytes_total == 131_072 * 8192 * 4 == 4 * GIB


def test_int4_weights_keep_a_bf16_kv_cache_unless_told() -> None:
    shape = ModelShape.from_config(LLAMA2_7B)
    p = plan(shape, parameters=LLAMA2_7B_PARAMS, precision="int4")
    assert p.serving_weights_bytes == 3_474_495_552
    assert p.kv_precision == "bf16" and p.kv_bytes_per_token == 524_288
    assert p.serving_total_bytes == 3_474_495_552 + 2 * GIB + math.ceil((3_474_495_552 + 2 * GIB) / 10)
    fp8 = plan(shape, parameters=LLAMA2_7B_PARAMS, precision="int4", kv_precision="fp8")
    assert fp8.kv_bytes_per_token == 32 * 32 * 128 * 2 * 1
    fp32 = plan(shape, parameters=LLAMA2_7B_PARAMS, precision="fp32")
    assert fp32.kv_precision == "fp32" and fp32.kv_bytes_per_token == 32 * 32 * 128 * 2 * 4


def test_encoder_has_no_kv_cache() -> None:
    p = plan(ModelShape.from_config(BERT_BASE), parameters=109_482_240, batch=8)
    assert p.context == 512
    assert p.kv_bytes_per_token == 0 and p.kv_bytes_total == 0
    assert p.serving_total_bytes == 2 * 109_482_240 + math.ceil(2 * 109_482_240 / 10)
    assert any("no KV cache" in note for note in p.notes)


def test_context_beyond_the_model_is_noted() -> None:
    p = plan(ModelShape.from_config(GPT2_SMALL), parameters=124_439_808, context=2048)
    assert p.kv_bytes_per_token == 12 * 12 * 64 * 2 * 2
    assert any("exceeds" in note for note in p.notes)


# --- training -----------------------------------------------------------------------------------------


def test_training_memory_llama2_7b() -> None:
    shape = ModelShape.from_config(LLAMA2_7B)
    p = plan(shape, parameters=LLAMA2_7B_PARAMS)
    # bf16 weights 2 + bf16 grads 2 + fp32 master 4 + Adam m 4 + v 4 = 16 bytes per parameter.
    assert p.full_finetune_bytes == (2 + 2 + 4 + 4 + 4) * 6_738_415_616 == 107_814_649_856
    assert p.lora_trainable_parameters == 32 * 4 * 16 * (4096 + 4096) == 16_777_216
    assert p.lora_bytes == 2 * 6_738_415_616 + 16 * 16_777_216
    assert any("activations" in note for note in p.notes)


def test_lora_trainable_parameters_with_gqa_and_mlp_targets() -> None:
    shape = ModelShape.from_config(LLAMA3_8B)
    attention = 16 * (4096 + 4096) + 2 * 16 * (4096 + 1024) + 16 * (4096 + 4096)  # q, k, v, o
    mlp = 3 * 8 * (4096 + 14336)  # gate, up, down at r=8
    assert lora_trainable_parameters(shape, 16, ("q_proj", "k_proj", "v_proj", "o_proj")) == 32 * attention
    assert lora_trainable_parameters(shape, 8, ("gate_proj", "up_proj", "down_proj")) == 32 * mlp
    # Duplicates count once.
    assert lora_trainable_parameters(shape, 16, ("q_proj", "q_proj")) == 32 * 16 * (4096 + 4096)


def test_qlora_base_is_counted_at_the_precision() -> None:
    p = plan(ModelShape.from_config(LLAMA2_7B), parameters=LLAMA2_7B_PARAMS, precision="int4", lora_rank=64)
    trainable = 32 * 4 * 64 * (4096 + 4096)
    assert p.lora_trainable_parameters == trainable
    assert p.lora_bytes == 3_474_495_552 + 16 * trainable


# --- fit table ------------------------------------------------------------------------------------------


def test_fit_table_llama2_7b_bf16() -> None:
    p = plan(ModelShape.from_config(LLAMA2_7B), parameters=LLAMA2_7B_PARAMS)
    fit = {row.accelerator_gb: row for row in p.fit}
    assert list(fit) == [16, 24, 40, 48, 80, 141]
    assert p.usable_fraction == 0.9
    # 16 GB card: usable 0.9 × 16 GiB = 15,461,882,265 bytes; the whole plan needs 17,186,746,368.
    assert fit[16].usable_bytes == 16 * GIB * 9 // 10 == 15_461_882_265
    # TP=2: half the weights and half the KV heads per rank, + 10 % headroom.
    share = 13_476_831_232 // 2 + 2 * GIB // 2
    assert fit[16].serving_tp == 2
    assert fit[16].serving_bytes_per_rank == share + share // 10 == 8_593_373_184
    # 24 GB card: usable 23,192,823,398 ≥ 17,186,746,368, so one card is enough.
    assert fit[24].serving_tp == 1 and fit[24].serving_bytes_per_rank == 17_186_746_368
    assert all(fit[gb].serving_tp == 1 for gb in (40, 48, 80, 141))
    # Full fine-tuning, fully sharded: 107,814,649,856 bytes / n ranks.
    assert fit[16].full_finetune_ranks == 8  # / 4 = 26.95e9 > 15.46e9; / 8 = 13.48e9 fits
    assert fit[80].full_finetune_ranks == 2  # usable 77,309,411,328; / 2 = 53.9e9
    assert fit[141].full_finetune_ranks == 1  # usable 141 × 0.9 GiB = 136,258,167,603 ≥ 107.8e9
    # LoRA: 13,745,266,688 bytes fit a 16 GB card.
    assert fit[16].lora_ranks == 1


def test_fit_table_kv_heads_are_replicated_beyond_their_count() -> None:
    # Llama-3-8B with 8 KV heads, context 8192 × batch 128: KV cache = 131,072 × 8192 × 128 = 128 GiB.
    p = plan(ModelShape.from_config(LLAMA3_8B), parameters=LLAMA3_8B_PARAMS, context=8192, batch=128)
    assert p.kv_bytes_total == 128 * GIB
    fit = {row.accelerator_gb: row for row in p.fit}
    weights = 2 * 8_030_261_248
    # 16 GB: TP=8 gives 2.0e9 weights + 16 GiB KV per rank; TP=16 halves the weights but each rank still
    # holds one whole KV head (16 GiB), so nothing fits.
    assert fit[16].serving_tp is None and fit[16].serving_bytes_per_rank is None
    # 24 GB (usable 23,192,823,398): TP=8 needs (weights/8 + 16 GiB) × 1.1.
    share = weights // 8 + 16 * GIB
    assert fit[24].serving_tp == 8 and fit[24].serving_bytes_per_rank == math.ceil(share * 11 / 10)
    # 141 GB (usable 136,258,167,603): TP=1 needs (16.06e9 + 137.4e9) × 1.1; TP=2 (8.03e9 + 68.7e9) × 1.1.
    share2 = weights // 2 + 64 * GIB
    assert fit[141].serving_tp == 2 and fit[141].serving_bytes_per_rank == math.ceil(share2 * 11 / 10)


def test_fit_table_skips_degrees_that_do_not_divide_the_heads() -> None:
    # Qwen2-0.5B has 14 attention heads: only TP 1 and 2 are possible.
    shape = ModelShape.from_config(QWEN2_05B)
    kv_per_token = 24 * 2 * 64 * 2 * 2
    p = plan(shape, parameters=494_032_768, batch=1, accelerators_gb=(1,))
    assert p.kv_bytes_total == kv_per_token * 32768 == 384 * MIB
    share = 494_032_768 + 384 * MIB // 2  # TP=2: (0.99e9 + 0.40e9) × 1.1 = 1.53e9 > 0.97e9 usable at TP=1
    assert p.fit[0].serving_tp == 2 and p.fit[0].serving_bytes_per_rank == share + share // 10
    # Batch 4: TP=2 needs (0.49e9 + 0.81e9) × 1.1 > 0.97e9; TP=4 would fit but 14 % 4 != 0.
    assert plan(shape, parameters=494_032_768, batch=4, accelerators_gb=(1,)).fit[0].serving_tp is None


# --- pipeline --------------------------------------------------------------------------------------------


def test_pipeline_bubble() -> None:
    assert pipeline_bubble(8, 4) == pytest.approx(1 - 8 / 11)
    assert pipeline_bubble(8, 1) == 0.0
    assert pipeline_bubble(1, 4) == pytest.approx(0.75)
    assert pipeline_bubble(32, 4) == pytest.approx(3 / 35)
    p = plan(ModelShape.from_config(LLAMA2_7B), parameters=LLAMA2_7B_PARAMS, micro_batches=8, pipeline_stages=4)
    assert p.pipeline_bubble == pytest.approx(3 / 11)


# --- rendering ---------------------------------------------------------------------------------------------


def test_to_dict_is_json_and_rows_are_human() -> None:
    p = plan(ModelShape.from_config(LLAMA2_7B), parameters=LLAMA2_7B_PARAMS)
    data = json.loads(json.dumps(p.to_dict()))
    assert data["kv_bytes_total"] == 2 * GIB
    assert data["weights_bytes"]["int4"] == 3_474_495_552
    assert data["shape"]["num_kv_heads"] == 32
    assert data["fit"][0] == {
        "accelerator_gb": 16,
        "usable_bytes": 15_461_882_265,
        "serving_tp": 2,
        "serving_bytes_per_rank": 8_593_373_184,
        "full_finetune_ranks": 8,
        "lora_ranks": 1,
    }
    rows = dict(p.rows())
    assert rows["parameters"] == "6,738,415,616 (6.74 B)"
    assert rows["weights bf16"] == "12.55 GiB"  # 13,476,831,232 / 2**30
    assert rows["KV cache per token (bf16)"] == "512.00 KiB"
    assert rows["KV cache (4,096 × 1)"] == "2.00 GiB"
    assert rows["fits 16 GB"].startswith("serve TP=2 (8.00 GiB/rank)")
    assert rows["pipeline bubble (m=8, n=1)"] == "0.0%"
    assert all(isinstance(label, str) and isinstance(value, str) for label, value in p.rows())


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size"])
def test_missing_key_is_named(key: str) -> None:
    config = {k: v for k, v in LLAMA2_7B.items() if k != key}
    with pytest.raises(InvalidInput, match=key) as caught:
        ModelShape.from_config(config)
    assert caught.value.details == {"field": key}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({**LLAMA2_7B, "num_hidden_layers": 0}, "num_hidden_layers"),
        ({**LLAMA2_7B, "hidden_size": "4096"}, "hidden_size"),
        ({**LLAMA2_7B, "num_key_value_heads": 5}, "num_key_value_heads"),
        ({**LLAMA2_7B, "hidden_size": 4095}, "head_dim"),
        ({**LLAMA2_7B, "tie_word_embeddings": "no"}, "tie_word_embeddings"),
        ({k: v for k, v in GPT2_SMALL.items() if k not in ("n_positions", "n_ctx")}, "n_positions"),
    ],
)
def test_bad_config_values(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        ModelShape.from_config(config)


def test_estimate_needs_intermediate_size_and_a_known_moe_layout() -> None:
    shape = ModelShape.from_config({k: v for k, v in LLAMA2_7B.items() if k != "intermediate_size"})
    assert shape.intermediate_size is None
    with pytest.raises(InvalidInput, match="intermediate_size"):
        estimate_parameters(shape)
    plan(shape, parameters=LLAMA2_7B_PARAMS)  # KV and weights do not need it
    moe = ModelShape.from_config({**LLAMA2_7B, "model_type": "qwen2_moe", "num_experts": 60})
    with pytest.raises(InvalidInput, match="mixture-of-experts"):
        estimate_parameters(moe)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"context": 0},
        {"context": -1},
        {"batch": 0},
        {"batch": True},
        {"parameters": 0},
        {"precision": "fp4"},
        {"kv_precision": "int4"},
        {"lora_rank": 0},
        {"lora_targets": ("c_attn",)},
        {"lora_targets": "q_proj"},
        {"lora_targets": ()},
        {"micro_batches": 0},
        {"pipeline_stages": 0},
        {"accelerators_gb": (0,)},
    ],
)
def test_bad_plan_arguments(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"parameters": LLAMA2_7B_PARAMS, **kwargs}
    with pytest.raises(InvalidInput):
        plan(ModelShape.from_config(LLAMA2_7B), **arguments)


def test_context_is_required_without_max_context() -> None:
    config = {k: v for k, v in LLAMA2_7B.items() if k != "max_position_embeddings"}
    with pytest.raises(InvalidInput, match="context"):
        plan(ModelShape.from_config(config), parameters=LLAMA2_7B_PARAMS)
    assert (
        plan(ModelShape.from_config(config), parameters=LLAMA2_7B_PARAMS, context=128).kv_bytes_total == 128 * 524_288
    )


def test_gate_proj_is_not_a_target_of_a_non_gated_mlp() -> None:
    shape = ModelShape.from_config(GPT2_SMALL)
    with pytest.raises(InvalidInput, match="gate_proj"):
        lora_trainable_parameters(shape, 8, ("gate_proj",))
    assert lora_trainable_parameters(shape, 8, ("up_proj",)) == 12 * 8 * (768 + 3072)
