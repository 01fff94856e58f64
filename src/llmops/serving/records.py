"""Request records: one per served request, handed to an asynchronous batched sink off the request path.

Every request the OpenAI-compatible API serves (and every shadow copy) ends in one :class:`RequestRecord`:
who (key prefix, principal, the request's ``user`` field), where (deployment, route, version, revision),
what (prompt and completion tokens, finish reason, status, cache hit, cost) and how fast (queue time, time
to first token, time per output token, end-to-end latency). The request path only calls
:meth:`RecordSink.emit`, which appends to a bounded in-process buffer and returns at once; a background task
takes batches from the buffer and hands them to the writers. When the writers fall behind and the buffer is
full, new records are dropped and counted (``dropped``, exported as ``llmops_records_dropped_total``), so a
slow database or log never slows down or stalls serving.

Writers implement :class:`RecordWriter` (one ``async write(batch)``). :class:`LogWriter` logs each record as a
JSON line on the ``llmops.requests`` logger; :class:`MemoryWriter` keeps the latest records in memory (tests,
live views). The monitoring package adds a database writer; a writer that raises loses its batch (counted in
``failed`` and, per writer class name, in ``failed_by``) and the sink carries on.

A :class:`RecordWriterGroup` runs several writers elsewhere and reports each one's outcome by name: the
gateway's built-in writers (the log and the database) run in a separate writer process
(:mod:`llmops.monitoring.writer_process`, ``LLMOPS_REQUEST_WRITER=process``), because in the gateway's own
process their CPU work contends with the event loop for the GIL. The sink counts a group's failures under the
inner writers' names, so the metrics read the same wherever the writers run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from llmops.serving.deployments.schemas import Monitoring

log = logging.getLogger("llmops.serving")
request_log = logging.getLogger("llmops.requests")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One served request (or shadow copy). Times are seconds; ``started_at``/``finished_at`` are Unix times.

    ``status`` is the HTTP status the caller got (499 when the client went away before the response ended,
    as nginx logs it); ``error`` is the OpenAI error code when there was one. ``prompt_tokens`` and
    ``completion_tokens`` are what the response reports (for a cache hit: the cached response's usage, though
    no engine ran). ``cost`` is in ``currency`` under the deployment's price table (0 for a cache hit; for a
    shadow, what the copy would cost, never charged to the caller).
    """

    request_id: str
    deployment: str
    endpoint: str  # completions | chat | embeddings
    route: str | None
    version: str | None
    revision: int | None
    mode: str  # primary | canary | shadow
    key_prefix: str | None
    user: str | None  # the key's principal
    request_user: str | None  # the request's ``user`` field, as the client sent it
    stream: bool
    status: int
    error: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    queue_time: float | None
    time_to_first_token: float | None
    time_per_output_token: float | None
    latency: float
    cost: float
    currency: str
    cache_hit: bool
    started_at: float
    finished_at: float
    # Kept only when the deployment's monitoring policy says so; never logged (see ``to_dict``).
    text: CapturedText | None = None
    policy: Monitoring | None = None

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    def to_dict(self) -> dict[str, Any]:
        """The record's numbers and names as JSON-able values, without the captured texts."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("text", "policy")}
        out["shadow"] = self.shadow
        return out


@dataclass(frozen=True, slots=True)
class CapturedText:
    """What was asked and answered: the prompt (for chat, the last user message), the chat messages, and the
    completion (choices joined by a blank line)."""

    prompt: str | None
    messages: list[dict[str, str]] | None
    completion: str | None


@runtime_checkable
class RecordWriter(Protocol):
    """Where batches of records go (a log, a database, a queue)."""

    async def write(self, records: Sequence[RequestRecord]) -> None: ...


@runtime_checkable
class RecordWriterGroup(Protocol):
    """Several writers behind one call (a writer process): each batch goes to all of them, and the answer says,
    per writer (by class name, the ``writer`` label of ``llmops_records_failed_total``), None when it wrote the
    batch or what went wrong. ``write_all`` never raises: a group that cannot reach its writers reports every
    one of them as failed. ``close`` ends what the group started (the sink's ``stop`` calls it)."""

    names: tuple[str, ...]

    async def write_all(self, records: Sequence[RequestRecord]) -> dict[str, str | None]: ...

    async def close(self) -> None: ...


AnyWriter = RecordWriter | RecordWriterGroup


@runtime_checkable
class RecordSink(Protocol):
    """What the request path sees: ``emit`` never blocks and never raises."""

    def emit(self, record: RequestRecord) -> None: ...


class LogWriter:
    """Each record as one JSON line on the ``llmops.requests`` logger (INFO)."""

    def __init__(self, logger: logging.Logger = request_log) -> None:
        self.logger = logger

    async def write(self, records: Sequence[RequestRecord]) -> None:
        self.write_now(records)

    def write_now(self, records: Sequence[RequestRecord]) -> None:
        """The same, synchronously (the writer process calls it)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        for record in records:
            self.logger.info("%s", json.dumps(record.to_dict(), separators=(",", ":"), ensure_ascii=False))


class MemoryWriter:
    """The latest ``capacity`` records, in memory."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.records: deque[RequestRecord] = deque(maxlen=capacity)

    async def write(self, records: Sequence[RequestRecord]) -> None:
        self.records.extend(records)


class BufferedSink:
    """A bounded buffer flushed to ``writers`` by a background task (see the module docstring).

    ``capacity`` bounds the records waiting for the writers; a flush takes up to ``batch_size`` records and
    runs at least every ``flush_interval`` seconds, at once when a batch is full. ``start()`` and ``stop()`` run
    in the app lifespan; ``stop()`` flushes what is left (for up to ``timeout`` seconds), then closes the writer
    groups (a writer process ends once it has written what it was sent).
    """

    def __init__(
        self,
        writers: Sequence[AnyWriter],
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
    ) -> None:
        self.writers = list(writers)
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.emitted = 0
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.failed_by: dict[str, int] = {}  # records lost per writer (class name; inside a group too)
        self._failing: dict[str, float] = {}  # writer -> when its current run of failures was last logged
        self._buffer: deque[RequestRecord] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._warned_at = 0.0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def emit(self, record: RequestRecord) -> None:
        if len(self._buffer) >= self.capacity:
            self.dropped += 1
            now = time.monotonic()
            if now - self._warned_at >= 10.0:
                self._warned_at = now
                log.warning(
                    "request records: buffer full (%d); dropping records (%d so far) - the writers are behind",
                    self.capacity,
                    self.dropped,
                )
            return
        self._buffer.append(record)
        self.emitted += 1
        if len(self._buffer) >= self.batch_size and self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="request-records")

    async def stop(self, timeout: float = 5.0) -> None:
        task, self._task = self._task, None
        if task is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.flush(), timeout)
        else:
            self._closing = True
            if self._wake is not None:
                self._wake.set()
            try:
                await asyncio.wait_for(task, timeout)  # the loop flushes what is left, then returns
            except TimeoutError:
                log.warning("request records: %d records not written at shutdown (writers too slow)", self.pending)
        for writer in self.writers:
            if isinstance(writer, RecordWriterGroup):
                try:
                    await writer.close()
                except Exception:  # pragma: no cover - a group's close stops what it can and does not raise
                    log.exception("request records: closing %s failed", type(writer).__name__)

    async def flush(self) -> None:
        """Write everything buffered now (in batches)."""
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
            for writer in self.writers:
                for name, error in (await _write(writer, batch)).items():
                    if error is not None:
                        self._lost(name, len(batch), error)
                    elif self._failing.pop(name, None) is not None:
                        log.warning("request records: writer %s works again; writing resumed", name)
            self.written += len(batch)

    def _lost(self, writer: str, count: int, error: str) -> None:
        """Count a failed batch; log the first failure of a run, then at most every 10 seconds."""
        self.failed += count
        self.failed_by[writer] = self.failed_by.get(writer, 0) + count
        now = time.monotonic()
        last = self._failing.get(writer)
        if last is None or now - last >= 10.0:
            self._failing[writer] = now
            log.error(
                "request records: writer %s failed (%s); %d records lost so far, serving goes on and writing "
                "resumes when it recovers",
                writer,
                error,
                self.failed_by[writer],
            )

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # pragma: no cover - flush already guards each writer
                log.exception("request records: flush failed")
            if self._closing:
                return


def describe(exc: BaseException) -> str:
    """An exception as the failure logs show it: ``TypeName: message``."""
    return f"{type(exc).__name__}: {exc}"


async def _write(writer: AnyWriter, batch: Sequence[RequestRecord]) -> dict[str, str | None]:
    """Hand ``batch`` to one writer or group: per writer name, None when written, else what went wrong."""
    if isinstance(writer, RecordWriterGroup):
        try:
            return await writer.write_all(batch)
        except Exception as exc:  # pragma: no cover - write_all reports failures instead of raising
            return dict.fromkeys(writer.names, describe(exc))
    try:
        await writer.write(batch)
    except Exception as exc:
        return {type(writer).__name__: describe(exc)}
    return {type(writer).__name__: None}


class NullSink:
    """Discards records (an ``OpenAIServing`` built without a gateway)."""

    dropped = 0

    def emit(self, record: RequestRecord) -> None:
        return None


__all__ = [
    "AnyWriter",
    "BufferedSink",
    "CapturedText",
    "LogWriter",
    "MemoryWriter",
    "NullSink",
    "RecordSink",
    "RecordWriter",
    "RecordWriterGroup",
    "RequestRecord",
    "describe",
]
