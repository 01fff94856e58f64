"""Iteration-level continuous batching on a dedicated thread.

The scheduler owns the model while it runs: one thread loops over *iterations*, and in each one

1. drops sequences whose client went away (their stream was closed or its task cancelled),
2. answers at most one scoring job (prompt logprobs without generation),
3. admits waiting sequences while slots are free and prefills them, one sequence at a time, in chunks of at
   most ``prefill_chunk_tokens`` per iteration, so that a long prompt delays running sequences by one chunk
   rather than by its whole length; a sequence whose prefill completes samples its first token at once,
4. runs ONE batched decode step for every running sequence, samples, emits, and retires the sequences that
   hit EOS, a stop token, a stop string, their ``max_tokens`` or the context limit.

New sequences therefore join between decode steps, and a finished one leaves its slot to the next at once.
PyTorch releases the GIL inside its ops, so the asyncio loop keeps serving HTTP while a step runs. Results
cross to asyncio in one ``loop.call_soon_threadsafe`` per iteration that fills per-request queues.

The waiting queue is bounded: when it is full ``submit`` raises ``QuotaExceeded`` with a ``retry_after``
estimated from recent service times, which the gateway turns into a 429 with ``Retry-After``.

The model-facing work (forward passes and the slot cache) is behind the small :class:`Runner` protocol so
that this module holds only policy and bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from llmops.errors import QuotaExceeded, Unavailable
from llmops.serving.engines.base import (
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    ScoreResult,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from llmops.serving.engines.sampling import RowLogprobs, RowParams, make_generator, prompt_logprobs, sample
from llmops.serving.engines.tokenizer import HFTokenizer, IncrementalDetokenizer, StopStringBuffer

log = logging.getLogger("llmops.serving")


class Runner(Protocol):
    """The model side of the scheduler: forward passes over the slot cache."""

    @property
    def max_batch(self) -> int: ...

    def prefill(self, slot: int, token_ids: Sequence[int], start: int, *, all_logits: bool) -> torch.Tensor:
        """Logits ``[len(token_ids) or 1, vocab]`` of a prompt chunk written into ``slot`` from ``start``."""
        ...

    def decode(self, token_ids: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
        """Logits ``[n, vocab]`` of one new token for each of the slots ``0..n-1``."""
        ...

    def move(self, src: int, dst: int, length: int) -> None: ...

    def forward_all(self, token_ids: Sequence[int]) -> torch.Tensor:
        """Logits ``[len(token_ids), vocab]`` of a sequence without the cache (scoring)."""
        ...


Item = GenerationChunk | BaseException


class Sink:
    """Where a sequence's chunks go: an asyncio queue on the loop that submitted it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Item] = asyncio.Queue()


@dataclass(eq=False)
class SeqState:
    """One request's state inside the scheduler (touched by the scheduler thread only, except ``aborted``)."""

    request: GenerationRequest
    prompt_ids: list[int]
    max_tokens: int
    sink: Sink
    detok: IncrementalDetokenizer
    arrival: float = field(default_factory=time.perf_counter)
    slot: int = -1
    computed: int = 0
    output_ids: list[int] = field(default_factory=list)
    admitted_at: float | None = None
    first_token_at: float | None = None
    aborted: bool = False
    finished: bool = False
    sent_first: bool = False
    prompt_lps: list[TokenLogprob | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        req = self.request
        self.row = RowParams(
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            generator=make_generator(req.seed),
            logprobs=req.logprobs,
        )
        self.stops = StopStringBuffer(req.stop)
        self.stop_ids = frozenset(req.stop_token_ids)


@dataclass(eq=False)
class ScoreJob:
    request_id: str
    token_ids: list[int]
    top_logprobs: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[ScoreResult]


class Scheduler:
    """The batching loop (see the module docstring); thread-safe ``submit``, ``submit_score`` and ``abort``."""

    def __init__(
        self,
        runner: Runner,
        tokenizer: HFTokenizer,
        *,
        max_waiting: int = 256,
        prefill_chunk_tokens: int = 512,
        name: str = "engine",
    ) -> None:
        self._runner = runner
        self._tok = tokenizer
        self.max_batch = runner.max_batch
        self.max_waiting = max_waiting
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._waiting: deque[SeqState] = deque()
        self._jobs: deque[ScoreJob] = deque()
        self._running: list[SeqState] = []
        self._prefilling: SeqState | None = None
        self._outbox: list[tuple[Sink, Item]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._accepting = False
        self._service_time = 1.0  # moving average of admitted-to-finished seconds
        self.steps = 0
        self.last_error: str | None = None

    # --- called from the asyncio side -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._accepting = True
        self._thread = threading.Thread(target=self._loop, name=f"scheduler-{self._name}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def n_running(self) -> int:
        """Sequences holding a slot (read from other threads: a snapshot, exact between iterations)."""
        running = list(self._running)  # copied under the GIL: the scheduler thread may be replacing it
        return sum(not s.finished for s in running) + (self._prefilling is not None)

    @property
    def n_waiting(self) -> int:
        return len(self._waiting) + len(self._jobs)

    def retry_after(self) -> int:
        """Seconds until a place in the queue is likely to free up (at least 1, at most 60)."""
        backlog = (self.n_waiting + 1) / max(self.max_batch, 1)
        return int(min(60, max(1, math.ceil(self._service_time * backlog))))

    def _admit(self) -> None:
        if not self._accepting:
            raise Unavailable("the engine is not accepting requests", details={"code": "engine_stopping"})
        if len(self._waiting) + len(self._jobs) >= self.max_waiting:
            retry = self.retry_after()
            raise QuotaExceeded(
                f"the engine queue is full ({self.max_waiting} waiting); retry in {retry} s",
                details={"code": "queue_full", "retry_after": retry},
            )

    def submit(self, seq: SeqState) -> None:
        """Queue a sequence, or raise ``QuotaExceeded`` (queue full) / ``Unavailable`` (stopping)."""
        with self._lock:
            self._admit()
            self._waiting.append(seq)
        self._wake.set()

    def submit_score(self, job: ScoreJob) -> None:
        with self._lock:
            self._admit()
            self._jobs.append(job)
        self._wake.set()

    def abort(self, seq: SeqState) -> None:
        """Ask for a sequence to be dropped at the next iteration (callable from any thread)."""
        seq.aborted = True
        self._wake.set()

    def close_admission(self) -> None:
        self._accepting = False

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the thread; sequences still running or waiting end with ``finish_reason="abort"``."""
        self._accepting = False
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the scheduler thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            worked = False
            try:
                with torch.inference_mode():
                    worked = self._step()
            except Exception as exc:  # a failed step must not kill the engine: fail what ran, keep serving
                log.exception("engine %s: step failed", self._name)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._fail_running(exc)
            self._flush()
            if not worked:
                self._wake.wait(0.5)
        self._abort_everything()
        self._flush()

    def _step(self) -> bool:
        self._drop_aborted()
        self._compact()
        worked = self._run_one_job()
        worked = self._prefill_phase() or worked
        self._compact()
        worked = self._decode_phase() or worked
        if worked:
            self.steps += 1
        return worked

    def _drop_aborted(self) -> None:
        now = time.perf_counter()
        with self._lock:
            if any(s.aborted for s in self._waiting):
                kept: deque[SeqState] = deque()
                for seq in self._waiting:
                    if seq.aborted:
                        self._finish(seq, "abort", None, now)
                    else:
                        kept.append(seq)
                self._waiting = kept
        for seq in self._running:
            if seq.aborted and not seq.finished:
                self._finish(seq, "abort", None, now)
        if self._prefilling is not None and self._prefilling.aborted:
            self._finish(self._prefilling, "abort", None, now)
            self._prefilling = None

    def _compact(self) -> None:
        """Keep decoding sequences in slots 0..n-1 and the one being prefilled in slot n (module docstring)."""
        alive = [s for s in self._running if not s.finished]
        if len(alive) != len(self._running):
            n = len(alive)
            taken = {s.slot for s in alive}
            holes = [i for i in range(n) if i not in taken]
            movers = sorted((s for s in alive if s.slot >= n), key=lambda s: s.slot)
            for hole, seq in zip(holes, movers, strict=True):
                self._runner.move(seq.slot, hole, seq.computed)
                seq.slot = hole
            self._running = sorted(alive, key=lambda s: s.slot)
        pre = self._prefilling
        if pre is not None and pre.slot != len(self._running):
            self._runner.move(pre.slot, len(self._running), pre.computed)
            pre.slot = len(self._running)

    def _run_one_job(self) -> bool:
        with self._lock:
            job = self._jobs.popleft() if self._jobs else None
        if job is None:
            return False
        if job.future.done():  # the caller gave up
            return True
        try:
            logits = self._runner.forward_all(job.token_ids)
            ids = torch.tensor(job.token_ids, dtype=torch.long)
            rows = prompt_logprobs(logits[:-1], ids[1:], job.top_logprobs)
            lps: list[TokenLogprob | None] = [None]
            lps += [self._token_logprob(t, r) for t, r in zip(job.token_ids[1:], rows, strict=True)]
            result: ScoreResult | BaseException = ScoreResult(job.request_id, tuple(job.token_ids), tuple(lps))
        except Exception as exc:
            log.exception("engine %s: scoring failed", self._name)
            result = Unavailable(f"scoring failed: {exc}", details={"code": "engine_error"})
        _resolve_threadsafe(job.loop, job.future, result)
        return True

    def _prefill_phase(self) -> bool:
        budget = self.prefill_chunk_tokens
        worked = False
        while budget > 0:
            seq = self._prefilling
            if seq is None:
                if len(self._running) >= self.max_batch:
                    break
                with self._lock:
                    seq = self._waiting.popleft() if self._waiting else None
                if seq is None:
                    break
                seq.slot = len(self._running)
                seq.admitted_at = time.perf_counter()
                self._prefilling = seq
            want_prompt_lps = seq.request.prompt_logprobs is not None
            start = seq.computed
            chunk = seq.prompt_ids[start : start + budget]
            logits = self._runner.prefill(seq.slot, chunk, start, all_logits=want_prompt_lps)
            worked = True
            budget -= len(chunk)
            seq.computed += len(chunk)
            if want_prompt_lps:
                self._collect_prompt_logprobs(seq, logits, start, len(chunk))
            if seq.computed < len(seq.prompt_ids):
                break  # the rest of this prompt goes in the next iteration
            self._prefilling = None
            self._running.append(seq)
            result = sample(logits[-1:], [seq.row])
            self._append_token(seq, result.token_ids[0], result.logprobs[0], time.perf_counter())
            self._flush()  # its first token goes out now, not after the other prefills of this iteration
        return worked

    def _collect_prompt_logprobs(self, seq: SeqState, logits: torch.Tensor, start: int, length: int) -> None:
        """Logprobs of prompt tokens ``start+1 .. start+length`` (those that exist) from a chunk's logits."""
        if start == 0:
            seq.prompt_lps.append(None)
        targets = seq.prompt_ids[start + 1 : start + length + 1]
        if not targets:
            return
        k = seq.request.prompt_logprobs or 0
        rows = prompt_logprobs(logits[: len(targets)], torch.tensor(targets, dtype=torch.long), k)
        seq.prompt_lps += [self._token_logprob(t, r) for t, r in zip(targets, rows, strict=True)]

    def _decode_phase(self) -> bool:
        running = self._running
        if not running:
            return False
        tokens = [s.output_ids[-1] for s in running]
        positions = [s.computed for s in running]
        logits = self._runner.decode(tokens, positions)
        for seq in running:
            seq.computed += 1
        result = sample(logits, [s.row for s in running])
        now = time.perf_counter()
        for seq, token, lp in zip(running, result.token_ids, result.logprobs, strict=True):
            self._append_token(seq, token, lp, now)
        return True

    # --- per-token bookkeeping ------------------------------------------------------------------------------
    def _token_logprob(self, token_id: int, row: RowLogprobs) -> TokenLogprob:
        text = self._tok.token_text
        top = tuple(TopLogprob(t, text(t), lp) for t, lp in zip(row.top_ids, row.top_logprobs, strict=True))
        return TokenLogprob(token_id=token_id, token=text(token_id), logprob=row.logprob, rank=row.rank, top=top)

    def _append_token(self, seq: SeqState, token: int, row_lp: RowLogprobs | None, now: float) -> None:
        seq.output_ids.append(token)
        if seq.first_token_at is None:
            seq.first_token_at = now
        finish: FinishReason | None = None
        stop_reason: str | int | None = None
        if token in self._tok.eos_token_ids and not seq.request.ignore_eos:
            finish = "stop"
        elif token in seq.stop_ids:
            finish, stop_reason = "stop", token
        else:
            matched = seq.stops.append(seq.detok.add(token))
            if matched is None and len(seq.output_ids) >= seq.max_tokens:
                matched = seq.stops.append(seq.detok.flush())
                finish = "length"
            if matched is not None:
                finish, stop_reason = "stop", matched
        logprobs = (self._token_logprob(token, row_lp),) if row_lp is not None else None
        text = seq.stops.take(final=finish is not None)
        if finish is None:
            self._emit(seq, text, (token,), logprobs)
        else:
            self._finish(seq, finish, stop_reason, now, text=text, token_ids=(token,), logprobs=logprobs)

    def _emit(
        self,
        seq: SeqState,
        text: str,
        token_ids: tuple[int, ...],
        logprobs: tuple[TokenLogprob, ...] | None,
        *,
        finish: FinishReason | None = None,
        stop_reason: str | int | None = None,
        usage: Usage | None = None,
    ) -> None:
        first = not seq.sent_first
        seq.sent_first = True
        chunk = GenerationChunk(
            request_id=seq.request.request_id,
            text=text,
            token_ids=token_ids,
            logprobs=logprobs if seq.request.logprobs is not None else None,
            prompt_token_ids=tuple(seq.prompt_ids) if first else None,
            prompt_logprobs=tuple(seq.prompt_lps) if first and seq.request.prompt_logprobs is not None else None,
            finish_reason=finish,
            stop_reason=stop_reason,
            usage=usage,
        )
        self._outbox.append((seq.sink, chunk))

    def _finish(
        self,
        seq: SeqState,
        reason: FinishReason,
        stop_reason: str | int | None,
        now: float,
        *,
        text: str = "",
        token_ids: tuple[int, ...] = (),
        logprobs: tuple[TokenLogprob, ...] | None = None,
    ) -> None:
        seq.finished = True
        admitted = seq.admitted_at if seq.admitted_at is not None else now
        usage = Usage(
            prompt_tokens=len(seq.prompt_ids),
            completion_tokens=len(seq.output_ids),
            queue_time=admitted - seq.arrival,
            time_to_first_token=None if seq.first_token_at is None else seq.first_token_at - seq.arrival,
            total_time=now - seq.arrival,
        )
        if seq.admitted_at is not None and reason != "abort":
            self._service_time = 0.8 * self._service_time + 0.2 * (now - admitted)
        self._emit(seq, text, token_ids, logprobs, finish=reason, stop_reason=stop_reason, usage=usage)

    def _flush(self) -> None:
        """Hand this iteration's chunks to their event loops: one thread-safe call per loop."""
        if not self._outbox:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Sink, Item]]] = {}
        for sink, item in self._outbox:
            by_loop.setdefault(sink.loop, []).append((sink, item))
        self._outbox = []
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
                loop.call_soon_threadsafe(_deliver, items)

    def _fail_running(self, exc: Exception) -> None:
        error = Unavailable(f"the engine failed while generating: {exc}", details={"code": "engine_error"})
        victims = [s for s in self._running if not s.finished]
        if self._prefilling is not None:
            victims.append(self._prefilling)
        for seq in victims:
            seq.finished = True
            self._outbox.append((seq.sink, error))
        self._running = []
        self._prefilling = None

    def _abort_everything(self) -> None:
        now = time.perf_counter()
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
            jobs, self._jobs = list(self._jobs), deque()
        for seq in [*self._running, *([self._prefilling] if self._prefilling else []), *waiting]:
            if not seq.finished:
                self._finish(seq, "abort", None, now)
        self._running, self._prefilling = [], None
        for job in jobs:
            _resolve_threadsafe(job.loop, job.future, Unavailable("the engine stopped", details={"code": "stopped"}))


def _deliver(items: list[tuple[Sink, Item]]) -> None:
    for sink, item in items:
        sink.queue.put_nowait(item)


def _resolve_threadsafe(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[ScoreResult], result: ScoreResult | BaseException
) -> None:
    def resolve() -> None:
        if future.done():
            return
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(resolve)


class SequenceStream:
    """The stream of one sequence's chunks; closing it, or cancelling a pending read, aborts the sequence."""

    def __init__(self, seq: SeqState, scheduler: Scheduler) -> None:
        self._seq = seq
        self._scheduler = scheduler
        self._done = False

    @property
    def request_id(self) -> str:
        return self._seq.request.request_id

    @property
    def prompt_token_ids(self) -> tuple[int, ...]:
        return tuple(self._seq.prompt_ids)

    def __aiter__(self) -> SequenceStream:
        return self

    async def __anext__(self) -> GenerationChunk:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._seq.sink.queue.get()
        except BaseException:  # cancelled: the client is gone
            self._close()
            raise
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item.finish_reason is not None:
            self._done = True
        return item

    async def aclose(self) -> None:
        self._close()

    async def __aenter__(self) -> SequenceStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if not self._done:
            self._done = True
            self._scheduler.abort(self._seq)

    def __del__(self) -> None:  # dropped without being closed: stop spending compute on it
        if not getattr(self, "_done", True):
            self._scheduler.abort(self._seq)


__all__ = ["Runner", "Scheduler", "ScoreJob", "SeqState", "SequenceStream", "Sink"]
