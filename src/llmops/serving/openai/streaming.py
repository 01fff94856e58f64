"""Server-sent events for streamed completions: encoding, merging choices, stopping on disconnect.

A stream is ``data: <json>\\n\\n`` events and a final ``data: [DONE]\\n\\n``, as OpenAI and vLLM send them.

:class:`EventStreamResponse` watches for the client's disconnect while it streams (whatever ASGI version
the server speaks) and cancels the body on disconnect; the body's ``finally`` closes its engine streams, so
the sequences are aborted at the engine's next step and their KV-cache slots freed. :func:`merge` interleaves
the streams of several choices (``n`` > 1, several prompts) in the order their chunks arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from llmops.errors import LLMOpsError
from llmops.serving.engines.base import GenerationChunk, GenerationStream

DONE = b"data: [DONE]\n\n"


def event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def error_event(exc: BaseException) -> bytes:
    """An error that happened after a stream started: an OpenAI-shaped error event (the status is already sent)."""
    if isinstance(exc, LLMOpsError):
        details = exc.details if isinstance(exc.details, dict) else {}
        status = 400 if exc.status == 422 else exc.status
        code = details.get("code") or exc.code
        message = exc.message
    else:
        status, code, message = 500, "internal_error", f"internal error ({type(exc).__name__})"
    kind = "invalid_request_error" if status < 500 else "server_error"
    return event({"error": {"message": message, "type": kind, "param": None, "code": code}})


class EventStreamResponse(StreamingResponse):
    """``text/event-stream`` whose body is cancelled (and so closed) when the client goes away."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        merged = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
        super().__init__(content, headers=merged, media_type=self.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                try:
                    await self.stream_response(send)
                except OSError:
                    pass  # the client went away while we wrote
                finally:
                    group.cancel_scope.cancel()

            async def watch() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        group.cancel_scope.cancel()
                        return

            group.start_soon(stream)
            group.start_soon(watch)
        body = self.body_iterator
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def merge(streams: Sequence[GenerationStream]) -> AsyncIterator[tuple[int, GenerationChunk]]:
    """``(choice index, chunk)`` from every stream as chunks arrive; closes every stream when done or closed."""
    if len(streams) == 1:
        try:
            async for chunk in streams[0]:
                yield 0, chunk
        finally:
            await streams[0].aclose()
        return
    queue: asyncio.Queue[tuple[int, GenerationChunk | None, BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: GenerationStream) -> None:
        try:
            async for chunk in stream:
                queue.put_nowait((index, chunk, None))
        except Exception as exc:
            queue.put_nowait((index, None, exc))
            return
        queue.put_nowait((index, None, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(streams)
        while remaining:
            index, item, error = await queue.get()
            if error is not None:
                raise error
            if item is None:
                remaining -= 1
                continue
            yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.aclose()
