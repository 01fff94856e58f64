"""Memory planner: how much memory a model needs to serve and to fine-tune, and on which accelerators it fits.

Pure arithmetic over a Hugging Face ``config.json`` and a parameter count, so the numbers can be checked
by hand (the tests do) and shown before anyone downloads 15 GB of weights. Nothing here touches the
database, the blob store or torch; the CLI (``llmops plan``), REST and UI render a :class:`Plan`.

Formulas (every figure is in bytes, rounded up to a whole byte):

- **Weights** at precision ``p``: ``parameters × bytes_per_param(p)`` with fp32 = 4, fp16 = bf16 = 2,
  fp8 = int8 = 1 and int4 = 0.5 + 2/128. The int4 figure adds the group-wise scales that GPTQ, AWQ and
  bitsandbytes-nf4 style kernels store: one fp16 scale per group of 128 weights (``INT4_GROUP_SIZE``),
  i.e. 2/128 bytes per parameter. int8 and fp8 scales are per channel or per tensor and are left out
  (under 0.1 %). Every parameter is counted at the same precision, embeddings and ``lm_head`` included,
  though real quantizers often keep those in 16 bit: the int4/int8 figures are a floor, not a ceiling.
- **KV cache** per token: ``layers × kv_heads × head_dim × 2 (K and V) × kv_bytes``; for the whole cache
  ``per_token × context × batch``. The KV precision defaults to the weights precision when that is a
  float type and to bf16 when the weights are integer-quantized (weight-only quantization keeps a 16-bit
  cache). Encoder-only models (BERT, RoBERTa) keep no KV cache: 0, with a note. Sliding-window layers
  are not modelled, so the cache for such models is an upper bound.
- **Activation headroom**: ``ACTIVATION_HEADROOM`` = 10 % of weights + KV cache. It stands for the
  forward pass's temporary tensors, the CUDA context and allocator fragmentation; a fixed fraction is
  simple to check and matches the slack serving engines leave when they pre-allocate.
- **Serving total** = weights(precision) + KV cache + headroom.
- **Full fine-tuning** with mixed-precision Adam: 16 bytes per parameter (bf16 weights 2 + bf16 grads 2 +
  fp32 master weights 4 + Adam m and v 8). Activations are *not* included: they depend on sequence
  length, batch and checkpointing; a note says so.
- **LoRA**: frozen base weights at ``precision`` + trainable adapter parameters × 16 bytes (same Adam
  accounting). An adapter of rank r on a ``d_in → d_out`` matrix has ``r × (d_in + d_out)`` parameters.
- **Fit table**: for each accelerator size the smallest tensor-parallel degree in ``TP_DEGREES`` whose
  per-rank share fits ``USABLE_FRACTION`` (90 %) of the card. Weights are split evenly across ranks;
  the KV cache is split by KV head, so when the degree exceeds the number of KV heads each rank still
  holds one head (KV heads are replicated, as vLLM does); headroom is 10 % of the per-rank weights + KV.
  A degree is only considered when the attention heads divide evenly across ranks (a vLLM requirement).
  Card sizes are read as GiB (2**30 bytes), which is what a "80 GB" card reports (81,559 MiB for an
  H100). The same table gives the number of fully sharded ranks (FSDP / ZeRO-3: everything split
  evenly, activations excluded) for full fine-tuning and for LoRA.
- **Pipeline bubble** for m micro-batches over n stages (GPipe / 1F1B): ``1 − m / (m + n − 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from llmops.errors import InvalidInput

#: Bytes per parameter (weights) and per element (KV cache). int4 carries its group-scale overhead.
INT4_GROUP_SIZE = 128
PRECISION_BYTES: dict[str, Fraction] = {
    "fp32": Fraction(4),
    "fp16": Fraction(2),
    "bf16": Fraction(2),
    "fp8": Fraction(1),
    "int8": Fraction(1),
    "int4": Fraction(1, 2) + Fraction(2, INT4_GROUP_SIZE),
}
#: Precisions the weights table always shows (fp16 has the size of bf16, fp8 of int8).
WEIGHT_TABLE_PRECISIONS = ("fp32", "bf16", "int8", "int4")
#: Precisions a KV cache can be stored in (element sizes, no group scales).
KV_PRECISION_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}
FLOAT_PRECISIONS = frozenset({"fp32", "fp16", "bf16", "fp8"})

ACTIVATION_HEADROOM = Fraction(1, 10)
USABLE_FRACTION = Fraction(9, 10)
TRAINING_BYTES_PER_PARAM = 16
TP_DEGREES = (1, 2, 4, 8, 16)
GIB = 2**30

#: LoRA target names, read as the logical projections of any architecture (GPT-2's fused ``c_attn``
#: counts as separate q/k/v adapters; a non-gated MLP has no ``gate_proj``).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

_GPT2_TYPES = frozenset({"gpt2"})
_ENCODER_TYPES = frozenset({"bert", "roberta", "xlm-roberta"})
# Model types whose ``config.json`` may omit ``tie_word_embeddings`` and whose class default differs
# from transformers' base default (True).
_UNTIED_BY_DEFAULT = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3"})
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length")
_MOE_KEYS = ("num_experts", "n_routed_experts", "moe_num_experts")


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs from a model's ``config.json``.

    The first fields are the architecture's size. The defaulted ones after them describe the block layout
    that :func:`estimate_parameters` needs, filled by :meth:`from_config` per model type, so a shape built by
    hand is a plain Llama-like decoder:

    - ``is_decoder``: False for encoder-only models, which keep no KV cache;
    - ``gated_mlp``: gate/up/down (Llama) rather than up/down (GPT-2, BERT);
    - ``qkv_bias``, ``out_bias``, ``mlp_bias``, ``norm_bias``: which layers carry biases (LayerNorm has one,
      RMSNorm does not);
    - ``norms_per_layer``: 2, or 4 for Gemma 2/3; ``qk_norm``: per-head q/k norms (Qwen3, Gemma 3);
    - ``position_embeddings``: rows of learned position embeddings (GPT-2, BERT), 0 for rotary;
    - ``type_vocab_size`` and ``pooler``: BERT's token type embeddings and pooler;
    - ``num_experts``: experts per MLP (1 = dense, Mixtral's ``num_local_experts`` otherwise), 0 for a
      mixture-of-experts layout the estimator does not model (shared experts: Qwen-MoE, DeepSeek).
    """

    architecture: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int | None
    vocab_size: int
    max_context: int | None
    tie_word_embeddings: bool
    is_decoder: bool = True
    gated_mlp: bool = True
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = False
    norms_per_layer: int = 2
    qk_norm: bool = False
    position_embeddings: int = 0
    type_vocab_size: int = 0
    pooler: bool = False
    num_experts: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelShape:
        """Read a Hugging Face config dict (``config.json``), the text part of a multimodal one included.

        Keys are looked up in ``text_config`` first and then at the top level, because multimodal configs
        (LLaVA, Gemma 3) keep the language model there but some put ``vocab_size`` or
        ``tie_word_embeddings`` outside. Keys a config leaves to the class default are not guessed: a
        missing required key raises :class:`InvalidInput` naming it.
        """
        if not isinstance(config, Mapping):
            raise InvalidInput("config must be a JSON object", details={"field": "config"})
        text = config.get("text_config")
        scopes: list[Mapping[str, Any]] = [text, config] if isinstance(text, Mapping) else [config]

        def get(*keys: str) -> Any:
            for scope in scopes:
                for key in keys:
                    if scope.get(key) is not None:
                        return scope[key]
            return None

        def positive(*keys: str, required: bool = True) -> int | None:
            value = get(*keys)
            if value is None:
                if required:
                    raise InvalidInput(f"config is missing {keys[0]!r}", details={"field": keys[0]})
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidInput(
                    f"config {keys[0]!r} must be a positive integer, got {value!r}", details={"field": keys[0]}
                )
            return value

        model_type = get("model_type")
        if not isinstance(model_type, str) or not model_type:
            raise InvalidInput("config is missing 'model_type'", details={"field": "model_type"})
        architectures = config.get("architectures") or (
            text.get("architectures") if isinstance(text, Mapping) else None
        )
        architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else ""

        num_layers = _req(positive("num_hidden_layers", "n_layer", "num_layers"))
        hidden = _req(positive("hidden_size", "n_embd", "d_model"))
        heads = _req(positive("num_attention_heads", "n_head", "num_heads"))
        kv_heads = positive("num_key_value_heads", required=False) or heads
        if heads % kv_heads:
            raise InvalidInput(
                f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})",
                details={"field": "num_key_value_heads"},
            )
        head_dim = positive("head_dim", required=False)
        if head_dim is None:
            if hidden % heads:
                raise InvalidInput(
                    f"config is missing 'head_dim' and hidden_size ({hidden}) is not a multiple of "
                    f"num_attention_heads ({heads})",
                    details={"field": "head_dim"},
                )
            head_dim = hidden // heads
        vocab = _req(positive("vocab_size"))
        max_context = positive(*_CONTEXT_KEYS, required=False)
        tied = get("tie_word_embeddings")
        if tied is None:
            tied = model_type not in _UNTIED_BY_DEFAULT
        elif not isinstance(tied, bool):
            raise InvalidInput(
                "config 'tie_word_embeddings' must be a boolean", details={"field": "tie_word_embeddings"}
            )

        common: dict[str, Any] = dict(
            architecture=architecture, model_type=model_type, num_layers=num_layers, hidden_size=hidden,
            num_attention_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab,
            max_context=max_context, tie_word_embeddings=tied,
        )  # fmt: skip
        learned_positions = model_type in _GPT2_TYPES or model_type in _ENCODER_TYPES
        if learned_positions and max_context is None:
            name = "n_positions" if model_type in _GPT2_TYPES else "max_position_embeddings"
            raise InvalidInput(f"config is missing {name!r}", details={"field": name})
        if model_type in _GPT2_TYPES:
            # GPT-2: LayerNorm with bias, Conv1D layers with bias, learned positions; n_inner None = 4 × n_embd.
            inner = positive("n_inner", "intermediate_size", required=False) or 4 * hidden
            return cls(**common, intermediate_size=inner, gated_mlp=False, qkv_bias=True, out_bias=True,
                       mlp_bias=True, norm_bias=True, position_embeddings=_req(max_context))  # fmt: skip
        if model_type in _ENCODER_TYPES:
            # BERT-style encoder: all linear layers and LayerNorms carry biases, learned positions, token
            # type embeddings and a pooler (BertModel's default); no KV cache.
            type_vocab = positive("type_vocab_size", required=False) or 2
            return cls(**common, intermediate_size=positive("intermediate_size", required=False), is_decoder=False,
                       gated_mlp=False, qkv_bias=True, out_bias=True, mlp_bias=True, norm_bias=True,
                       position_embeddings=_req(max_context), type_vocab_size=type_vocab,
                       pooler=True)  # fmt: skip
        # Llama-like decoders (Llama, Mistral, Mixtral, Qwen2/3, Gemma 1/2/3): RMSNorm without bias, gated
        # MLP, rotary positions. ``attention_bias`` covers q/k/v/o; Qwen2 hard-codes q/k/v bias only.
        attention_bias = bool(get("attention_bias"))
        experts = positive("num_local_experts", required=False) or 1
        if experts == 1 and any(get(key) for key in _MOE_KEYS):
            experts = 0  # an MoE layout the estimator does not model (shared experts, ...); see estimate_parameters
        return cls(
            **common,
            intermediate_size=positive("intermediate_size", "n_inner", "ffn_dim", required=False),
            qkv_bias=attention_bias or model_type == "qwen2",
            out_bias=attention_bias,
            mlp_bias=bool(get("mlp_bias")),
            norms_per_layer=4 if model_type in ("gemma2", "gemma3", "gemma3_text") else 2,
            qk_norm=model_type in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text"),
            num_experts=experts,
        )


def _req(value: int | None) -> int:
    """Narrow an ``int | None`` already checked to be present, for the type checker."""
    assert value is not None
    return value


def _linear(d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + (d_out if bias else 0)


def estimate_parameters(shape: ModelShape) -> int:
    """Parameter count from the config alone, for when the exact count from the weights is not known.

    Exact (checked against transformers) for Llama, Mistral, Mixtral, Qwen2, Qwen3, Gemma 1/2/3 text,
    GPT-2 (``GPT2LMHeadModel``) and BERT / RoBERTa (``BertModel`` with its pooler, no task head):

    - embeddings ``vocab × hidden`` (+ learned positions ``max_context × hidden`` and token types
      ``type_vocab × hidden`` for GPT-2 and BERT);
    - per layer, attention q ``hidden → heads × head_dim``, k and v ``hidden → kv_heads × head_dim``, o
      ``heads × head_dim → hidden`` (biases where the architecture has them: Qwen2 q/k/v, GPT-2, BERT);
    - per layer, MLP gate/up ``hidden → intermediate`` and down ``intermediate → hidden`` for gated MLPs
      (once per expert, plus a ``hidden → experts`` router, for Mixtral), or up and down only for GPT-2 and
      BERT;
    - norms of ``hidden`` (weight, + bias for LayerNorm): ``norms_per_layer`` per layer plus one more
      (the final norm of a decoder, the embedding LayerNorm of BERT); q/k norms of ``head_dim`` for Qwen3
      and Gemma 3;
    - the BERT pooler ``hidden → hidden`` with bias; ``lm_head`` ``hidden → vocab`` unless tied.

    Other model types are counted as a Llama-like decoder, which is close but not exact (partial rotary,
    fused layouts, extra norms). Vision towers of multimodal configs are not counted.
    """
    if shape.num_experts < 1:
        raise InvalidInput(
            f"cannot estimate the parameters of this mixture-of-experts layout ({shape.model_type}); "
            "pass the exact count from the weights",
            details={"field": "parameters"},
        )
    if shape.intermediate_size is None:
        raise InvalidInput("config is missing 'intermediate_size'", details={"field": "intermediate_size"})
    hidden, inter = shape.hidden_size, shape.intermediate_size
    q_out = shape.num_attention_heads * shape.head_dim
    kv_out = shape.num_kv_heads * shape.head_dim
    norm = hidden * (2 if shape.norm_bias else 1)

    attention = (
        _linear(hidden, q_out, shape.qkv_bias)
        + 2 * _linear(hidden, kv_out, shape.qkv_bias)
        + _linear(q_out, hidden, shape.out_bias)
        + (2 * shape.head_dim if shape.qk_norm else 0)
    )
    mlp = _linear(inter, hidden, shape.mlp_bias) + _linear(hidden, inter, shape.mlp_bias) * (
        2 if shape.gated_mlp else 1
    )
    if shape.num_experts > 1:
        mlp = mlp * shape.num_experts + hidden * shape.num_experts
    layer = attention + mlp + shape.norms_per_layer * norm

    embeddings = (shape.vocab_size + shape.position_embeddings + shape.type_vocab_size) * hidden
    head = 0 if (shape.tie_word_embeddings or not shape.is_decoder) else shape.vocab_size * hidden
    pooler = _linear(hidden, hidden, True) if shape.pooler else 0
    return embeddings + shape.num_layers * layer + norm + pooler + head


def pipeline_bubble(micro_batches: int, stages: int) -> float:
    """Idle fraction of a synchronous pipeline schedule (GPipe, 1F1B): ``1 − m / (m + n − 1)``.

    With n stages the first micro-batch needs n − 1 steps to reach the last stage and the last one
    n − 1 steps to drain, so m micro-batches take m + n − 1 steps of which m are useful per stage.
    """
    _check_positive("micro_batches", micro_batches)
    _check_positive("pipeline_stages", stages)
    return 1.0 - micro_batches / (micro_batches + stages - 1)


def lora_trainable_parameters(shape: ModelShape, rank: int, targets: Sequence[str]) -> int:
    """Adapter parameters: ``rank × (d_in + d_out)`` per targeted matrix per layer (per expert for MoE MLPs)."""
    _check_positive("lora_rank", rank)
    if isinstance(targets, str) or not targets:
        raise InvalidInput("lora_targets must be a non-empty list of names", details={"field": "lora_targets"})
    hidden = shape.hidden_size
    q_out = shape.num_attention_heads * shape.head_dim
    kv_out = shape.num_kv_heads * shape.head_dim
    dims: dict[str, tuple[int, int]] = {
        "q_proj": (hidden, q_out),
        "k_proj": (hidden, kv_out),
        "v_proj": (hidden, kv_out),
        "o_proj": (q_out, hidden),
    }
    per_expert = max(shape.num_experts, 1)
    total = 0
    for target in dict.fromkeys(targets):
        if target not in LORA_TARGETS or (target == "gate_proj" and not shape.gated_mlp):
            valid = [t for t in LORA_TARGETS if shape.gated_mlp or t != "gate_proj"]
            raise InvalidInput(f"unknown LoRA target {target!r} for {shape.model_type}; one of {valid}",
                               details={"field": "lora_targets"})  # fmt: skip
        if target in dims:
            d_in, d_out = dims[target]
            total += rank * (d_in + d_out)
            continue
        if shape.intermediate_size is None:
            raise InvalidInput("config is missing 'intermediate_size'", details={"field": "intermediate_size"})
        total += rank * (hidden + shape.intermediate_size) * per_expert
    return shape.num_layers * total


@dataclass(frozen=True)
class FitRow:
    """One accelerator size: the smallest degrees that fit, or None when 16 ranks are not enough."""

    accelerator_gb: int
    usable_bytes: int
    serving_tp: int | None
    serving_bytes_per_rank: int | None
    full_finetune_ranks: int | None
    lora_ranks: int | None


@dataclass(frozen=True)
class Plan:
    """Memory figures for one model, context, batch and precision; all sizes are bytes."""

    shape: ModelShape
    parameters: int
    context: int
    batch: int
    precision: str
    kv_precision: str
    weights_bytes: Mapping[str, int]
    serving_weights_bytes: int
    kv_bytes_per_token: int
    kv_bytes_total: int
    activation_headroom_bytes: int
    serving_total_bytes: int
    full_finetune_bytes: int
    lora_rank: int
    lora_targets: tuple[str, ...]
    lora_trainable_parameters: int
    lora_bytes: int
    usable_fraction: float
    fit: tuple[FitRow, ...]
    micro_batches: int
    pipeline_stages: int
    pipeline_bubble: float
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the REST API and ``--json``: plain ints, floats, strings and lists."""
        return {
            "shape": {name: getattr(self.shape, name) for name in self.shape.__dataclass_fields__},
            "parameters": self.parameters,
            "context": self.context,
            "batch": self.batch,
            "precision": self.precision,
            "kv_precision": self.kv_precision,
            "weights_bytes": dict(self.weights_bytes),
            "serving_weights_bytes": self.serving_weights_bytes,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "kv_bytes_total": self.kv_bytes_total,
            "activation_headroom_bytes": self.activation_headroom_bytes,
            "serving_total_bytes": self.serving_total_bytes,
            "full_finetune_bytes": self.full_finetune_bytes,
            "lora_rank": self.lora_rank,
            "lora_targets": list(self.lora_targets),
            "lora_trainable_parameters": self.lora_trainable_parameters,
            "lora_bytes": self.lora_bytes,
            "usable_fraction": self.usable_fraction,
            "fit": [{name: getattr(row, name) for name in row.__dataclass_fields__} for row in self.fit],
            "micro_batches": self.micro_batches,
            "pipeline_stages": self.pipeline_stages,
            "pipeline_bubble": self.pipeline_bubble,
            "notes": list(self.notes),
        }

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a two-column CLI or UI table, sizes in binary units."""
        shape = self.shape
        rows = [
            ("model", f"{shape.architecture or shape.model_type} ({shape.model_type})"),
            ("parameters", f"{self.parameters:,} ({self.parameters / 1e9:.2f} B)"),
            ("layers × KV heads × head dim", f"{shape.num_layers} × {shape.num_kv_heads} × {shape.head_dim}"),
            ("context × batch", f"{self.context:,} × {self.batch}"),
        ]
        for precision, size in self.weights_bytes.items():
            suffix = f" (+ fp16 scale per {INT4_GROUP_SIZE})" if precision == "int4" else ""
            rows.append((f"weights {precision}{suffix}", human_bytes(size)))
        rows += [
            (f"KV cache per token ({self.kv_precision})", human_bytes(self.kv_bytes_per_token)),
            (f"KV cache ({self.context:,} × {self.batch})", human_bytes(self.kv_bytes_total)),
            (f"activation headroom ({float(ACTIVATION_HEADROOM):.0%})", human_bytes(self.activation_headroom_bytes)),
            (f"serving total ({self.precision})", human_bytes(self.serving_total_bytes)),
            (f"full fine-tune (Adam, {TRAINING_BYTES_PER_PARAM} B/param)", human_bytes(self.full_finetune_bytes)),
            (f"LoRA r={self.lora_rank} trainable ({', '.join(self.lora_targets)})",
             f"{self.lora_trainable_parameters:,} ({self.lora_trainable_parameters / self.parameters:.2%})"),
            (f"LoRA total ({self.precision} base)", human_bytes(self.lora_bytes)),
        ]  # fmt: skip
        for row in self.fit:
            serving = (
                f"TP={row.serving_tp} ({human_bytes(row.serving_bytes_per_rank or 0)}/rank)"
                if row.serving_tp
                else f"no (TP ≤ {TP_DEGREES[-1]})"
            )
            full = f"{row.full_finetune_ranks}" if row.full_finetune_ranks else "no"
            lora = f"{row.lora_ranks}" if row.lora_ranks else "no"
            rows.append((f"fits {row.accelerator_gb} GB", f"serve {serving}; full FT ranks {full}; LoRA ranks {lora}"))
        rows.append(
            (f"pipeline bubble (m={self.micro_batches}, n={self.pipeline_stages})", f"{self.pipeline_bubble:.1%}")
        )
        rows += [("note", note) for note in self.notes]
        return rows


def human_bytes(size: int) -> str:
    """``12.55 GiB``, ``512.00 KiB``: binary units, as the fit table compares against GiB cards."""
    for unit, scale in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}", details={"field": name})


def _bytes(count: int, per_item: Fraction | int) -> int:
    return math.ceil(count * per_item)


def _ceil_div(a: int, b: int) -> int:
    """Integer ceiling division: byte counts beyond 2**53 must not pass through floats."""
    return -(-a // b)


def _smallest_fit(total: int, usable: int) -> int | None:
    """Fully sharded (FSDP / ZeRO-3) training: everything splits evenly over n ranks."""
    return next((n for n in TP_DEGREES if _ceil_div(total, n) <= usable), None)


def plan(
    shape: ModelShape,
    *,
    parameters: int,
    context: int | None = None,
    batch: int = 1,
    precision: str = "bf16",
    kv_precision: str | None = None,
    lora_rank: int = 16,
    lora_targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    micro_batches: int = 8,
    pipeline_stages: int = 1,
    accelerators_gb: Sequence[int] = (16, 24, 40, 48, 80, 141),
) -> Plan:
    """Compute the memory plan; see the module docstring for every formula.

    ``parameters`` is the exact count when the weights are known (the registry's manifest) or
    :func:`estimate_parameters` otherwise. ``context`` defaults to the model's ``max_context``.
    """
    _check_positive("parameters", parameters)
    _check_positive("batch", batch)
    if context is None:
        if shape.max_context is None:
            raise InvalidInput("context is required: the config declares no max_position_embeddings",
                               details={"field": "context"})  # fmt: skip
        context = shape.max_context
    _check_positive("context", context)
    if precision not in PRECISION_BYTES:
        raise InvalidInput(f"unknown precision {precision!r}; one of {sorted(PRECISION_BYTES)}",
                           details={"field": "precision"})  # fmt: skip
    if kv_precision is None:
        kv_precision = precision if precision in FLOAT_PRECISIONS else "bf16"
    if kv_precision not in KV_PRECISION_BYTES:
        raise InvalidInput(f"unknown KV cache precision {kv_precision!r}; one of {sorted(KV_PRECISION_BYTES)}",
                           details={"field": "kv_precision"})  # fmt: skip
    for gb in accelerators_gb:
        _check_positive("accelerators_gb", gb)
    bubble = pipeline_bubble(micro_batches, pipeline_stages)
    notes: list[str] = []

    weights = {p: _bytes(parameters, PRECISION_BYTES[p]) for p in WEIGHT_TABLE_PRECISIONS}
    serving_weights = _bytes(parameters, PRECISION_BYTES[precision])

    kv_bytes = KV_PRECISION_BYTES[kv_precision]
    if shape.is_decoder:
        # Per KV head, so the tensor-parallel split below can replicate heads when TP > KV heads.
        kv_per_head_token = shape.num_layers * shape.head_dim * 2 * kv_bytes
    else:
        kv_per_head_token = 0
        notes.append("encoder-only model: no KV cache")
    kv_per_token = kv_per_head_token * shape.num_kv_heads
    kv_total = kv_per_token * context * batch
    headroom = _bytes(serving_weights + kv_total, ACTIVATION_HEADROOM)
    if shape.max_context is not None and context > shape.max_context:
        notes.append(f"context {context:,} exceeds the model's max_context {shape.max_context:,}")

    full_ft = parameters * TRAINING_BYTES_PER_PARAM
    trainable = lora_trainable_parameters(shape, lora_rank, lora_targets)
    targets = tuple(dict.fromkeys(lora_targets))
    lora = serving_weights + trainable * TRAINING_BYTES_PER_PARAM
    notes.append("training figures exclude activations (they grow with sequence length × batch)")
    if precision in ("int8", "int4"):
        notes.append("quantized sizes count every parameter quantized; embeddings and lm_head often stay 16-bit")

    fit: list[FitRow] = []
    for gb in accelerators_gb:
        usable = math.floor(gb * GIB * USABLE_FRACTION)
        tp_found: int | None = None
        per_rank_found: int | None = None
        for tp in TP_DEGREES:
            kv_heads = shape.num_kv_heads
            if shape.num_attention_heads % tp or (kv_heads % tp and tp % kv_heads):
                continue
            kv_rank = kv_per_head_token * _ceil_div(kv_heads, tp) * context * batch
            share = _ceil_div(serving_weights, tp) + kv_rank
            per_rank = share + _bytes(share, ACTIVATION_HEADROOM)
            if per_rank <= usable:
                tp_found, per_rank_found = tp, per_rank
                break
        fit.append(
            FitRow(gb, usable, tp_found, per_rank_found, _smallest_fit(full_ft, usable), _smallest_fit(lora, usable))
        )

    return Plan(
        shape=shape,
        parameters=parameters,
        context=context,
        batch=batch,
        precision=precision,
        kv_precision=kv_precision,
        weights_bytes=weights,
        serving_weights_bytes=serving_weights,
        kv_bytes_per_token=kv_per_token,
        kv_bytes_total=kv_total,
        activation_headroom_bytes=headroom,
        serving_total_bytes=serving_weights + kv_total + headroom,
        full_finetune_bytes=full_ft,
        lora_rank=lora_rank,
        lora_targets=targets,
        lora_trainable_parameters=trainable,
        lora_bytes=lora,
        usable_fraction=float(USABLE_FRACTION),
        fit=tuple(fit),
        micro_batches=micro_batches,
        pipeline_stages=pipeline_stages,
        pipeline_bubble=bubble,
        notes=tuple(notes),
    )
