"""Perplexity of texts under a causal language model: how surprising prompts are to a reference model.

A prompt distribution that moves away from what the reference model was trained on (another language, code
instead of prose, random strings) shows up as higher perplexity before any vocabulary statistic notices. The
model is the repository's reference Llama (``assets/reference-lm``) unless another directory is given; it is
loaded with transformers on CPU and runs batched under ``no_grad``, each text cut to the model's context.

Cost is bounded by sampling, not by the window: the drift report scores at most ``perplexity_max_texts``
prompts per window (default 200, see :class:`llmops.monitoring.drift.DriftConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from llmops.errors import InvalidInput
from llmops.modelloading import LOAD_LOCK, serialize_loads
from llmops.monitoring.descriptors import REFERENCE_MODEL_DIR


class PerplexityScorer(Protocol):
    """Perplexity per text; None for a text with no token to predict (empty)."""

    def score(self, texts: Sequence[str]) -> list[float | None]: ...


class CausalLMPerplexity:
    """Token-level perplexity under a causal LM directory (transformers ``AutoModelForCausalLM``).

    Each text is scored as ``bos + tokens`` (every token of the text predicted, none of padding), truncated
    to the model's context length; perplexity is ``exp`` of the mean negative log-likelihood per token.
    """

    def __init__(self, model_dir: Path | str = REFERENCE_MODEL_DIR, *, batch_size: int = 16) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise InvalidInput(f"{model_dir} is not a model directory (no config.json): pass a causal LM directory")
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._context = 0
        self._bos = 0

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        serialize_loads()
        with LOAD_LOCK:  # transformers' loading is not thread-safe (see llmops.modelloading)
            model: Any = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=torch.float32)
        model.eval()
        self._model = model
        self._context = int(getattr(model.config, "max_position_embeddings", 0) or 1024)
        bos = model.config.bos_token_id if model.config.bos_token_id is not None else model.config.eos_token_id
        self._bos = int(bos if bos is not None else 0)

    def score(self, texts: Sequence[str]) -> list[float | None]:
        import torch

        self._load()
        limit = self._context - 1  # the bos token takes one position
        encoded: list[list[int]] = [
            [
                self._bos,
                *self._tokenizer(text, add_special_tokens=False, truncation=True, max_length=limit)["input_ids"],
            ]
            for text in texts
        ]
        out: list[float | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = [i for i in order[start : start + self.batch_size] if len(encoded[i]) > 1]
                if not batch:
                    continue
                width = max(len(encoded[i]) for i in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, : len(encoded[i])] = 1
                logits = self._model(input_ids=ids, attention_mask=mask).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                target = ids[:, 1:]
                nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * mask[:, 1:]
                per_text = nll.sum(dim=1) / mask[:, 1:].sum(dim=1)
                for row, i in enumerate(batch):
                    value = math.exp(float(per_text[row]))
                    out[i] = value if math.isfinite(value) else None
        return out


__all__ = ["CausalLMPerplexity", "PerplexityScorer"]
