"""The embedded engine: a transformers causal LM served in-process with continuous batching on CPU.

``TorchEngine`` loads a model directory (a materialized registry version) with ``AutoModelForCausalLM`` and
``AutoTokenizer``, in eval mode under ``torch.inference_mode``, refusing pickle weights (``use_safetensors``)
and remote code. It runs the :class:`~llmops.serving.engines.scheduler.Scheduler` on its own thread over a
:class:`~llmops.serving.engines.slot_cache.SlotCache` (the KV cache design is described there).

Before serving, ``start`` runs a self-test: the logits of a few tokens computed through the slot cache
(prefill, then a two-row decode at different positions) must match an uncached forward pass. A model whose
attention does not go through the cache the way the slot cache assumes fails loudly at start instead of
generating wrong text.

Validation happens on the caller's side of the queue: a prompt that does not fit the context
(``InvalidInput``, ``details["code"] == "context_length_exceeded"``) never enters it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from llmops.errors import InvalidInput, InvalidModel, Unavailable
from llmops.modelloading import LOAD_LOCK, serialize_loads
from llmops.serving.engines.base import (
    Engine,
    EngineHealth,
    EngineStatus,
    GenerationRequest,
    ScoreRequest,
    ScoreResult,
)
from llmops.serving.engines.scheduler import Scheduler, ScoreJob, SeqState, SequenceStream, Sink
from llmops.serving.engines.slot_cache import SlotCache, check_supported, decode_mask, prefill_mask
from llmops.serving.engines.tokenizer import HFTokenizer, IncrementalDetokenizer

log = logging.getLogger("llmops.serving")

DTypeChoice = torch.dtype | Literal["auto"]


class TorchRunner:
    """Forward passes of a causal LM over a :class:`SlotCache` (the scheduler's ``Runner``)."""

    def __init__(self, model: Any, *, max_batch: int, max_len: int) -> None:
        self.model = model
        self._max_batch = max_batch
        self.max_len = max_len
        self.dtype: torch.dtype = next(model.parameters()).dtype
        self.cache = SlotCache(int(model.config.num_hidden_layers), max_batch=max_batch, max_len=max_len)

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def prefill(self, slot: int, token_ids: Sequence[int], start: int, *, all_logits: bool) -> torch.Tensor:
        length = len(token_ids)
        self.cache.plan_prefill(slot, start, length)
        out = self.model(
            input_ids=torch.tensor([list(token_ids)], dtype=torch.long),
            position_ids=torch.arange(start, start + length).unsqueeze(0),
            attention_mask=prefill_mask(start, length, self.dtype),
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=0 if all_logits else 1,
        )
        return out.logits[0]  # type: ignore[no-any-return]

    def decode(self, token_ids: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
        pos = torch.tensor(list(positions), dtype=torch.long)
        self.cache.plan_decode(pos)
        out = self.model(
            input_ids=torch.tensor(list(token_ids), dtype=torch.long).unsqueeze(1),
            position_ids=pos.unsqueeze(1),
            attention_mask=decode_mask(pos, self.dtype),
            past_key_values=self.cache,
            use_cache=True,
        )
        return out.logits[:, -1, :]  # type: ignore[no-any-return]

    def move(self, src: int, dst: int, length: int) -> None:
        self.cache.move(src, dst, length)

    def forward_all(self, token_ids: Sequence[int]) -> torch.Tensor:
        out = self.model(input_ids=torch.tensor([list(token_ids)], dtype=torch.long), use_cache=False)
        return out.logits[0]  # type: ignore[no-any-return]

    def self_test(self) -> None:
        """Compare cached logits with an uncached forward pass; raise ``InvalidModel`` when they differ."""
        vocab = int(self.model.get_input_embeddings().num_embeddings)
        ids = [(7 * i + 3) % vocab for i in range(5)]
        before = self.cache.update_counts
        reference = self.forward_all(ids).float()
        first = self.prefill(0, ids[:3], 0, all_logits=True).float()
        checks = [(first, reference[:3])]
        forwards = 1
        if self.max_batch >= 2:
            self.prefill(1, ids[:2], 0, all_logits=False)
            both = self.decode([ids[3], ids[2]], [3, 2]).float()  # two rows at different positions
            checks += [(both[0], reference[3]), (both[1], reference[2])]
        else:
            self.prefill(0, ids[:3], 0, all_logits=False)
            one = self.decode([ids[3]], [3]).float()
            checks.append((one[0], reference[3]))
        forwards += 2
        last = self.decode([ids[4]], [4]).float()
        checks.append((last[0], reference[4]))
        forwards += 1
        updates = [after - b for after, b in zip(self.cache.update_counts, before, strict=True)]
        if any(u != forwards for u in updates):
            raise InvalidModel(
                "the model's attention does not use the key/value cache once per layer and forward pass "
                f"(updates per layer: {updates}, expected {forwards})",
                details={"code": "unsupported_model", "feature": "cache layout"},
            )
        tolerance = 1e-3 if self.dtype == torch.float32 else 5e-2
        scale = 1.0 + float(reference.abs().max())
        worst = max(float((got - want).abs().max()) for got, want in checks)
        if worst > tolerance * scale:
            raise InvalidModel(
                f"cached and uncached logits differ by {worst:.3g} (tolerance {tolerance * scale:.3g})",
                details={"code": "unsupported_model", "feature": "cache consistency"},
            )


def _context_length(config: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise InvalidModel("the model config names no context length", details={"code": "unsupported_model"})


def _resolve_dtype(config: Any, choice: DTypeChoice) -> torch.dtype:
    """``auto``: the checkpoint's dtype, except float16, which CPUs compute poorly (float32 instead)."""
    if isinstance(choice, torch.dtype):
        return choice
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(saved, str):
        saved = getattr(torch, saved, None)
    if saved in (torch.float32, torch.bfloat16):
        return saved  # type: ignore[no-any-return]
    return torch.float32


class TorchEngine:
    """The in-process PyTorch engine (see the module docstring).

    ``max_batch_size`` is the number of KV-cache slots (sequences decoded together), ``max_waiting`` the bound
    of the waiting queue, ``max_model_len`` an optional cap on the model's context (it sizes the cache:
    ``layers x 2 x max_batch_size x kv_heads x max_model_len x head_dim`` elements), ``prefill_chunk_tokens``
    the prompt tokens prefilled per iteration.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        model_name: str | None = None,
        max_batch_size: int = 16,
        max_waiting: int = 256,
        max_model_len: int | None = None,
        dtype: DTypeChoice = "auto",
        prefill_chunk_tokens: int = 512,
        attn_implementation: str = "sdpa",
    ) -> None:
        if max_batch_size < 1 or max_waiting < 0 or prefill_chunk_tokens < 1:
            raise InvalidInput("max_batch_size and prefill_chunk_tokens must be positive, max_waiting not negative")
        self.model_dir = Path(model_dir)
        self._model_name = model_name or self.model_dir.name
        self.max_batch_size = max_batch_size
        self.max_waiting = max_waiting
        self._max_model_len = max_model_len
        self._dtype_choice = dtype
        self._prefill_chunk_tokens = prefill_chunk_tokens
        self._attn_implementation = attn_implementation
        self._status: EngineStatus = "stopped"
        self._error: str | None = None
        self._tokenizer: HFTokenizer | None = None
        self._runner: TorchRunner | None = None
        self._scheduler: Scheduler | None = None
        self._vocab_rows = 0

    # --- lifecycle ------------------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def tokenizer(self) -> HFTokenizer:
        if self._tokenizer is None:
            raise Unavailable(f"engine {self._model_name} is not started", details={"code": "engine_not_ready"})
        return self._tokenizer

    @property
    def runner(self) -> TorchRunner:
        """The model runner (tests and benchmarks reach the model and cache through it)."""
        if self._runner is None:
            raise Unavailable(f"engine {self._model_name} is not started", details={"code": "engine_not_ready"})
        return self._runner

    async def start(self) -> None:
        if self._status in ("starting", "ready"):
            return
        self._status = "starting"
        try:
            await asyncio.to_thread(self._load)
        except Exception as exc:
            self._status, self._error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        assert self._runner is not None and self._tokenizer is not None
        self._scheduler = Scheduler(
            self._runner,
            self._tokenizer,
            max_waiting=self.max_waiting,
            prefill_chunk_tokens=self._prefill_chunk_tokens,
            name=self._model_name,
        )
        self._scheduler.start()
        self._status = "ready"

    def _load(self) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        path = str(self.model_dir)
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        context = _context_length(config)
        if self._max_model_len is not None:
            context = min(context, self._max_model_len)
        check_supported(config, context)
        dtype = _resolve_dtype(config, self._dtype_choice)
        serialize_loads()
        with LOAD_LOCK:  # transformers' loading is not thread-safe (see llmops.modelloading)
            model: Any = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=dtype,
                attn_implementation=self._attn_implementation,
                use_safetensors=True,
                trust_remote_code=False,
            )
        model.eval()
        hf_tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        eos: set[int] = set()
        for source in (getattr(model.generation_config, "eos_token_id", None), hf_tok.eos_token_id):
            if isinstance(source, int):
                eos.add(source)
            elif isinstance(source, list):
                eos.update(int(t) for t in source)
        self._tokenizer = HFTokenizer(hf_tok, context_length=context, eos_token_ids=eos)
        self._vocab_rows = int(model.get_input_embeddings().num_embeddings)
        runner = TorchRunner(model, max_batch=self.max_batch_size, max_len=context)
        with torch.inference_mode():
            runner.self_test()
        self._runner = runner
        log.info(
            "engine %s: loaded %s (%s, context %d, %d slots, cache %.1f MiB)",
            self._model_name,
            path,
            dtype,
            context,
            self.max_batch_size,
            runner.cache.nbytes() / 2**20,
        )

    async def stop(self, drain_timeout: float = 0.0) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            self._status = "stopped"
            return
        self._status = "stopping"
        scheduler.close_admission()
        deadline = asyncio.get_running_loop().time() + drain_timeout
        while (scheduler.n_running or scheduler.n_waiting) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(scheduler.shutdown)
        await asyncio.sleep(0)  # let the abort chunks reach their queues
        self._scheduler = None
        self._status = "stopped"

    async def health(self) -> EngineHealth:
        scheduler = self._scheduler
        status = self._status
        if status == "ready" and (scheduler is None or not scheduler.alive):
            status = "failed"
        return EngineHealth(
            status=status,
            model=self._model_name,
            context_length=self._tokenizer.context_length if self._tokenizer else 0,
            running=scheduler.n_running if scheduler else 0,
            waiting=scheduler.n_waiting if scheduler else 0,
            max_batch_size=self.max_batch_size,
            max_waiting=self.max_waiting,
            steps=scheduler.steps if scheduler else 0,
            last_error=(scheduler.last_error if scheduler else None) or self._error,
        )

    # --- requests -------------------------------------------------------------------------------------------
    def _ready_scheduler(self) -> Scheduler:
        if self._status != "ready" or self._scheduler is None:
            raise Unavailable(f"engine {self._model_name} is {self._status}", details={"code": "engine_not_ready"})
        return self._scheduler

    def _prompt_ids(self, prompt: str | Sequence[int], add_special_tokens: bool) -> list[int]:
        ids = (
            self.tokenizer.encode(prompt, add_special_tokens=add_special_tokens)
            if isinstance(prompt, str)
            else [int(t) for t in prompt]
        )
        if not ids:
            raise InvalidInput("the prompt encodes to no tokens", details={"code": "empty_prompt"})
        bad = [t for t in ids if not 0 <= t < self._vocab_rows]
        if bad:
            raise InvalidInput(
                f"token ids out of the vocabulary (0..{self._vocab_rows - 1}): {bad[:5]}",
                details={"code": "invalid_token_ids"},
            )
        return ids

    def _context_error(self, prompt_tokens: int, max_tokens: int | None) -> InvalidInput:
        context = self.tokenizer.context_length
        requested = prompt_tokens + (max_tokens or 0)
        message = f"This model's maximum context length is {context} tokens. However, you requested {requested} tokens"
        message += f" ({prompt_tokens} in the prompt, {max_tokens or 0} in the completion)."
        message += " Please reduce the length of the prompt or completion."
        details = {
            "code": "context_length_exceeded",
            "context_length": context,
            "prompt_tokens": prompt_tokens,
            "max_tokens": max_tokens,
        }
        return InvalidInput(message, details=details)

    async def generate(self, request: GenerationRequest) -> SequenceStream:
        """Validate and queue ``request``; return its stream (see :class:`~llmops.serving.engines.base.Engine`)."""
        scheduler = self._ready_scheduler()
        ids = self._prompt_ids(request.prompt, request.add_special_tokens)
        context = self.tokenizer.context_length
        room = context - len(ids)
        if room < 1 or (request.max_tokens is not None and request.max_tokens > room):
            raise self._context_error(len(ids), request.max_tokens)
        seq = SeqState(
            request=request,
            prompt_ids=ids,
            max_tokens=request.max_tokens or room,
            sink=Sink(asyncio.get_running_loop()),
            detok=IncrementalDetokenizer(self.tokenizer, ids, skip_special_tokens=request.skip_special_tokens),
        )
        scheduler.submit(seq)
        return SequenceStream(seq, scheduler)

    async def score(self, request: ScoreRequest) -> ScoreResult:
        """Prompt logprobs from one forward pass, run on the scheduler thread between decode steps."""
        scheduler = self._ready_scheduler()
        ids = self._prompt_ids(request.prompt, request.add_special_tokens)
        if len(ids) > self.tokenizer.context_length:
            raise self._context_error(len(ids), None)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ScoreResult] = loop.create_future()
        scheduler.submit_score(ScoreJob(request.request_id, ids, request.top_logprobs, loop, future))
        return await future


if TYPE_CHECKING:

    def _conforms(engine: TorchEngine) -> Engine:  # mypy proves TorchEngine implements the protocol
        return engine


__all__ = ["TorchEngine", "TorchRunner"]
