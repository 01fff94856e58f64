"""The embedding engine: a sentence-transformers version served with a small micro-batching queue.

Embeddings have nothing to generate, so they get their own small protocol (:class:`EmbeddingEngine`) next to
:class:`~llmops.serving.engines.base.Engine` instead of a fat base class full of ``NotImplementedError``.

:class:`SentenceTransformerEngine` loads a materialized registry version with the ``sentence-transformers``
package (safetensors only, no remote code) and encodes on one worker thread, so the event loop never runs
model code. Requests queue as whole inputs; the worker takes as many queued inputs as fit one batch
(``max_batch_size`` rows), encodes them in one forward pass and hands every caller its rows back on the
caller's own event loop. A bounded queue answers ``QuotaExceeded`` (429 with ``retry_after``) when full,
and an input longer than the model's ``max_seq_length`` is refused with ``context_length_exceeded`` instead
of being truncated silently (what OpenAI and vLLM do).

Vectors are L2-normalized by default, as vLLM's embedding pooler does (``normalize=False`` returns the raw
pooled vectors); inputs may be text or token ids of the model's tokenizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmops.errors import InvalidInput, QuotaExceeded, Unavailable
from llmops.modelloading import LOAD_LOCK, serialize_loads
from llmops.serving.engines.base import EngineHealth, EngineStatus

log = logging.getLogger("llmops.serving")

EmbeddingInput = str | Sequence[int]


@dataclass(frozen=True)
class EmbeddingResult:
    """One vector per input, in input order, and the number of tokens each input had."""

    vectors: list[list[float]]
    token_counts: list[int]

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)


class EmbeddingEngine(Protocol):
    """An engine that turns inputs into vectors (the ``embeddings`` engine kind)."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_input_tokens(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self, drain_timeout: float = 0.0) -> None: ...

    async def embed(self, inputs: Sequence[EmbeddingInput]) -> EmbeddingResult: ...

    async def health(self) -> EngineHealth: ...


@dataclass
class _Job:
    inputs: list[EmbeddingInput]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[EmbeddingResult]
    token_counts: list[int] = field(default_factory=list)


_STOP = object()


class SentenceTransformerEngine:
    """Serves one sentence-transformers model directory (see the module docstring).

    ``max_batch_size`` is the number of inputs encoded in one forward pass, ``max_waiting`` the bound of
    queued requests.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        model_name: str | None = None,
        max_batch_size: int = 32,
        max_waiting: int = 256,
        normalize: bool = True,
    ) -> None:
        if max_batch_size < 1 or max_waiting < 1:
            raise InvalidInput("max_batch_size and max_waiting must be positive")
        self.model_dir = Path(model_dir)
        self._model_name = model_name or self.model_dir.name
        self.max_batch_size = max_batch_size
        self.max_waiting = max_waiting
        self.normalize = normalize
        self._model: Any = None
        self._status: EngineStatus = "stopped"
        self._error: str | None = None
        self._queue: queue.Queue[_Job | object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._running = 0
        self._batches = 0
        self._dimension = 0
        self._max_tokens = 0

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_input_tokens(self) -> int:
        return self._max_tokens

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._status in ("starting", "ready"):
            return
        self._status = "starting"
        try:
            await asyncio.to_thread(self._load)
        except Exception as exc:
            self._status, self._error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=f"embed-{self._model_name}", daemon=True)
        self._thread.start()
        self._status = "ready"

    def _load(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ModuleNotFoundError as exc:
            raise InvalidInput(
                "the embeddings engine needs sentence-transformers: pip install 'llmops[embeddings]'"
            ) from exc

        serialize_loads()
        with LOAD_LOCK:  # transformers' loading is not thread-safe (see llmops.modelloading)
            model = SentenceTransformer(
                str(self.model_dir),
                device="cpu",
                trust_remote_code=False,
                local_files_only=True,
                model_kwargs={"use_safetensors": True},
            )
        model.eval()
        self._model = model
        self._dimension = int(model.get_embedding_dimension() or 0)
        self._max_tokens = int(model.max_seq_length or 512)
        log.info("embedding engine %s: loaded %s (dimension %d)", self._model_name, self.model_dir, self._dimension)

    async def stop(self, drain_timeout: float = 0.0) -> None:
        if self._thread is None:
            self._status = "stopped"
            return
        self._status = "stopping"
        deadline = asyncio.get_running_loop().time() + drain_timeout
        while (self._running or self._queue.qsize()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        self._queue.put(_STOP)
        thread, self._thread = self._thread, None
        await asyncio.to_thread(thread.join, 10.0)
        while True:  # whatever is still queued is refused
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, _Job):
                self._resolve(
                    job, Unavailable(f"engine {self._model_name} stopped", details={"code": "engine_stopped"})
                )
        self._model = None
        self._status = "stopped"

    async def health(self) -> EngineHealth:
        status = self._status
        if status == "ready" and (self._thread is None or not self._thread.is_alive()):
            status = "failed"
        return EngineHealth(
            status=status,
            model=self._model_name,
            context_length=self._max_tokens,
            running=self._running,
            waiting=self._queue.qsize(),
            max_batch_size=self.max_batch_size,
            max_waiting=self.max_waiting,
            steps=self._batches,
            last_error=self._error,
        )

    # --- requests -------------------------------------------------------------------------------------------
    async def embed(self, inputs: Sequence[EmbeddingInput]) -> EmbeddingResult:
        if self._status != "ready" or self._model is None:
            raise Unavailable(f"engine {self._model_name} is {self._status}", details={"code": "engine_not_ready"})
        if not inputs:
            raise InvalidInput("input must not be empty", details={"code": "invalid_request", "param": "input"})
        items = list(inputs)
        counts = [self._count(item, i) for i, item in enumerate(items)]
        if self._queue.qsize() >= self.max_waiting:
            raise QuotaExceeded(
                f"engine {self._model_name} has {self.max_waiting} requests waiting; retry shortly",
                details={"code": "queue_full", "retry_after": 1},
            )
        loop = asyncio.get_running_loop()
        job = _Job(items, loop, loop.create_future(), counts)
        self._queue.put(job)
        return await job.future

    def _count(self, item: EmbeddingInput, index: int) -> int:
        """Tokens of one input (special tokens included), refusing what the model cannot read whole."""
        if isinstance(item, str):
            if not item:
                raise InvalidInput(f"input[{index}] is empty", details={"code": "invalid_request", "param": "input"})
            n = len(self._model.tokenizer(item, add_special_tokens=True, truncation=False)["input_ids"])
        else:
            ids = list(item)
            vocab = len(self._model.tokenizer)
            if not ids or any(not isinstance(t, int) or not 0 <= t < vocab for t in ids):
                raise InvalidInput(
                    f"input[{index}]: token ids must be a non-empty list of ids in 0..{vocab - 1}",
                    details={"code": "invalid_token_ids", "param": "input"},
                )
            n = len(ids)
        if n > self._max_tokens:
            raise InvalidInput(
                f"This model's maximum context length is {self._max_tokens} tokens. However, input[{index}] has "
                f"{n} tokens. Please reduce the length of the input.",
                details={"code": "context_length_exceeded", "param": "input", "context_length": self._max_tokens},
            )
        return n

    # --- the worker thread ----------------------------------------------------------------------------------
    def _work(self) -> None:
        carry: _Job | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                return
            assert isinstance(first, _Job)
            batch = [first]
            rows = len(first.inputs)
            while rows < self.max_batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or not isinstance(nxt, _Job) or rows + len(nxt.inputs) > self.max_batch_size:
                    carry = nxt if isinstance(nxt, _Job) else None
                    if nxt is _STOP:
                        self._queue.put(_STOP)
                    break
                batch.append(nxt)
                rows += len(nxt.inputs)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        self._running = sum(len(j.inputs) for j in batch)
        try:
            flat = [item for job in batch for item in job.inputs]
            vectors = self._encode(flat)
            self._batches += 1
            at = 0
            for job in batch:
                n = len(job.inputs)
                self._resolve(job, EmbeddingResult(vectors[at : at + n], job.token_counts))
                at += n
        except Exception as exc:  # one bad batch must not kill the worker
            log.exception("embedding engine %s: batch failed", self._model_name)
            self._error = f"{type(exc).__name__}: {exc}"
            for job in batch:
                self._resolve(job, exc)
        finally:
            self._running = 0

    def _encode(self, inputs: list[EmbeddingInput]) -> list[list[float]]:
        import torch

        model = self._model
        chunk = max(self.max_batch_size, 1)
        out: list[list[float]] = []
        with torch.inference_mode():
            for start in range(0, len(inputs), chunk):
                part = inputs[start : start + chunk]
                features = self._features(part)
                embeddings = model(features)["sentence_embedding"].float()
                if self.normalize:
                    embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
                out.extend(embeddings.tolist())
        return out

    def _features(self, part: list[EmbeddingInput]) -> dict[str, Any]:
        """Tokenized features: text through the model's tokenizer, token ids padded as given."""
        import torch

        tokenizer = self._model.tokenizer
        rows: list[list[int]] = []
        for item in part:
            if isinstance(item, str):
                rows.append(list(tokenizer(item, add_special_tokens=True, truncation=False)["input_ids"]))
            else:
                rows.append([int(t) for t in item])
        width = max(len(r) for r in rows)
        pad = int(tokenizer.pad_token_id or 0)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        features: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
            features["token_type_ids"] = torch.zeros_like(ids)
        return features

    @staticmethod
    def _resolve(job: _Job, outcome: EmbeddingResult | BaseException) -> None:
        def settle() -> None:
            if job.future.done():
                return
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody is waiting
            job.loop.call_soon_threadsafe(settle)


if TYPE_CHECKING:

    def _conforms(engine: SentenceTransformerEngine) -> EmbeddingEngine:  # mypy proves the protocol holds
        return engine


__all__ = ["EmbeddingEngine", "EmbeddingInput", "EmbeddingResult", "SentenceTransformerEngine"]
