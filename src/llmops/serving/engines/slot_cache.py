"""A preallocated key/value cache with one slot per running sequence, as a transformers ``Cache``.

Design
------
Continuous batching needs sequences of different lengths, which join and leave at any step, to share one
batched decode step. transformers' ``DynamicCache`` grows every row together (all rows have one length) and
``StaticCache`` writes every row at the same position, so neither fits. ``SlotCache`` keeps, per layer, one
preallocated tensor pair ``[max_batch, kv_heads, max_len, head_dim]`` for keys and values, allocated at the
first update (from the shapes the model actually produces, as ``StaticLayer`` does), and:

- **Slots are compacted.** The ``n`` decoding sequences occupy slots ``0..n-1``, so a decode step's keys and
  values are plain views ``keys[:n, :, :L]`` (no gather). When a sequence leaves, the last one moves into its
  slot: one row copy of its cached positions per layer (:meth:`SlotCache.move`). A sequence being prefilled
  sits in slot ``n``, outside the decode rows.
- **Each row writes at its own position.** Before every forward pass the runner sets a *plan*
  (:meth:`plan_decode` or :meth:`plan_prefill`); ``update`` reads it. Decode: row ``i`` writes its one new
  key/value at ``positions[i]`` and attention sees ``[:n, :, :L]`` with ``L = max(positions) + 1``.
  Prefill: a chunk of ``q`` prompt tokens of one sequence is written at ``start..start+q`` of its slot and
  attention sees ``[slot:slot+1, :, :start+q]``; chunking long prompts falls out of this for free.
- **The caller supplies positions and the mask.** Decode passes ``position_ids`` ``[n, 1]`` (each row's own
  position, so rotary embeddings are right) and a prepared 4D additive mask ``[n, 1, 1, L]`` (0 up to the row's
  position, the dtype's minimum beyond, which hides shorter rows' stale tail). transformers'
  ``masking_utils.create_causal_mask`` returns a 4D mask as-is (``_preprocess_mask_arguments`` exits early on
  ``attention_mask.ndim == 4``), so the model never needs to infer lengths from the cache.

Only layers that attend to the full past work this way. Sliding-window, chunked, linear-attention (SSM) and
cross-attention layers keep other state; :func:`check_supported` refuses such configs by name, and the engine
runs a self-test comparing cached against uncached logits before it serves anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from llmops.errors import InvalidModel


@dataclass
class StepPlan:
    """Where the next forward pass reads and writes: set by the runner, read by every layer's ``update``."""

    kind: str = "none"  # "decode" | "prefill"
    rows: int = 0  # decode: number of rows (slots 0..rows-1)
    positions: torch.Tensor | None = None  # decode: [rows] position of each row's new token
    slot: int = 0  # prefill: the sequence's slot
    start: int = 0  # prefill: first position of the chunk
    kv_len: int = 0  # key/value length the attention sees


class SlotLayer(CacheLayerMixin):  # type: ignore[no-untyped-call]
    """One decoder layer's slots (see the module docstring)."""

    is_compileable = False
    is_sliding = False
    is_croppable = False

    def __init__(self, plan: StepPlan, *, max_batch: int, max_len: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.plan = plan
        self.max_batch = max_batch
        self.max_len = max_len
        self.updates = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        k_shape = (self.max_batch, key_states.shape[1], self.max_len, key_states.shape[-1])
        v_shape = (self.max_batch, value_states.shape[1], self.max_len, value_states.shape[-1])
        self.slot_keys = torch.zeros(k_shape, dtype=key_states.dtype, device=self.device)
        self.slot_values = torch.zeros(v_shape, dtype=value_states.dtype, device=self.device)
        self.keys, self.values = self.slot_keys, self.slot_values
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        keys, values, plan = self.slot_keys, self.slot_values, self.plan
        self.updates += 1
        if plan.kind == "decode":
            assert plan.positions is not None
            n = plan.rows
            rows = torch.arange(n, device=self.device)
            keys[rows, :, plan.positions] = key_states[:, :, 0]
            values[rows, :, plan.positions] = value_states[:, :, 0]
            return keys[:n, :, : plan.kv_len], values[:n, :, : plan.kv_len]
        if plan.kind == "prefill":
            q = key_states.shape[2]
            end = plan.start + q
            keys[plan.slot, :, plan.start : end] = key_states[0]
            values[plan.slot, :, plan.start : end] = value_states[0]
            return keys[plan.slot : plan.slot + 1, :, :end], values[plan.slot : plan.slot + 1, :, :end]
        raise RuntimeError("SlotCache.update called without a plan")

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.plan.kv_len, 0

    def get_seq_length(self) -> int:
        return self.plan.start if self.plan.kind == "prefill" else max(self.plan.kv_len - 1, 0)

    def get_max_length(self) -> int:
        return self.max_len

    def move(self, src: int, dst: int, length: int) -> None:
        if self.is_initialized and src != dst and length > 0:
            self.slot_keys[dst, :, :length] = self.slot_keys[src, :, :length]
            self.slot_values[dst, :, :length] = self.slot_values[src, :, :length]


class SlotCache(Cache):
    """Per-layer slot caches sharing one :class:`StepPlan`."""

    def __init__(self, num_layers: int, *, max_batch: int, max_len: int) -> None:
        self.plan = StepPlan()
        self.max_batch = max_batch
        self.max_len = max_len
        self.slot_layers = [SlotLayer(self.plan, max_batch=max_batch, max_len=max_len) for _ in range(num_layers)]
        super().__init__(layers=list(self.slot_layers))

    def plan_decode(self, positions: torch.Tensor) -> None:
        """Next forward: one new token for each of the rows ``0..len(positions)-1`` at its own position."""
        self.plan.kind = "decode"
        self.plan.rows = int(positions.shape[0])
        self.plan.positions = positions
        self.plan.kv_len = int(positions.max()) + 1

    def plan_prefill(self, slot: int, start: int, length: int) -> None:
        """Next forward: ``length`` prompt tokens of the sequence in ``slot``, from position ``start``."""
        if not 0 <= slot < self.max_batch or start + length > self.max_len:
            raise ValueError(f"prefill of slot {slot} positions {start}..{start + length} does not fit")
        self.plan.kind = "prefill"
        self.plan.slot = slot
        self.plan.start = start
        self.plan.kv_len = start + length
        self.plan.positions = None

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` cached positions of slot ``src`` into slot ``dst`` in every layer."""
        for layer in self.slot_layers:
            layer.move(src, dst, length)

    @property
    def update_counts(self) -> list[int]:
        """Updates seen by each layer; the engine's self-test checks that every layer went through the cache."""
        return [layer.updates for layer in self.slot_layers]

    def nbytes(self) -> int:
        """Bytes held by the allocated slot tensors."""
        total = 0
        for layer in self.slot_layers:
            if layer.is_initialized:
                total += layer.slot_keys.nbytes + layer.slot_values.nbytes
        return total


def decode_mask(positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive mask ``[n, 1, 1, L]`` of a decode step: row ``i`` sees keys ``0..positions[i]``."""
    kv_len = int(positions.max()) + 1
    hidden = torch.arange(kv_len).unsqueeze(0) > positions.unsqueeze(1)
    mask = torch.zeros(hidden.shape, dtype=dtype).masked_fill_(hidden, torch.finfo(dtype).min)
    return mask[:, None, None, :]


def prefill_mask(start: int, length: int, dtype: torch.dtype) -> torch.Tensor:
    """The additive causal mask ``[1, 1, length, start + length]`` of a prefill chunk."""
    query_pos = torch.arange(start, start + length).unsqueeze(1)
    hidden = torch.arange(start + length).unsqueeze(0) > query_pos
    mask = torch.zeros(hidden.shape, dtype=dtype).masked_fill_(hidden, torch.finfo(dtype).min)
    return mask[None, None, :, :]


def check_supported(config: Any, context_length: int) -> None:
    """Refuse model configs whose attention the slot cache cannot serve, naming the feature."""

    def unsupported(feature: str) -> InvalidModel:
        return InvalidModel(
            f"the torch engine does not support {feature} (model type {getattr(config, 'model_type', '?')})",
            details={"code": "unsupported_model", "feature": feature},
        )

    if getattr(config, "is_encoder_decoder", False):
        raise unsupported("encoder-decoder models")
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        other = sorted({str(t) for t in layer_types} - {"full_attention"})
        if other:
            raise unsupported(f"layer types {', '.join(other)}")
    window = getattr(config, "sliding_window", None)
    if isinstance(window, int) and not layer_types and window < context_length:
        raise unsupported(f"sliding window attention (window {window} < context {context_length})")
    if getattr(config, "attention_chunk_size", None):
        raise unsupported("chunked attention")


__all__ = ["SlotCache", "SlotLayer", "StepPlan", "check_supported", "decode_mask", "prefill_mask"]
