"""Requests to upstream routes (``openai-upstream``, ``vllm``), forwarded at the protocol layer.

When the route chosen for a request is served by an :class:`~llmops.serving.engines.upstream.UpstreamEngine`,
``OpenAIServing`` does everything it does for the torch engine up to the engine call — key scopes, routing,
admission (budget, rate limits), the response cache — and then forwards the client's own JSON body (the raw
body the route received, so fields the upstream understands and the gateway does not, such as vLLM's
sampling extras, reach it), with ``model`` renamed to the upstream's model name. The answer is relayed:

- a JSON body gets ``model`` set back to the deployment name; its ``usage`` feeds the ticket (tokens, cost,
  record, metrics), as the torch path's does;
- a stream is relayed event by event (:func:`relay`). Each chunk is parsed to count tokens as they come (one
  per chunk with text, as vLLM sends them, until the usage says exactly) and for the time to first token; a
  chunk is re-serialized only when something changes (``model`` renamed, a ``usage: null`` dropped), else its
  bytes pass as they came. The upstream is always asked for ``stream_options.include_usage``; its usage
  chunk settles the ticket and is relayed, with the gateway's ``cost`` and ``cost_currency`` added, only when
  the client asked for it;
- an upstream's error answer keeps its status and OpenAI error body; an error in the middle of a stream
  becomes an error event, then ``[DONE]``; a client that disconnects closes the upstream response.

Shadow copies to upstream routes are forwarded (never streamed) and discarded. The tokenizer endpoints are
forwarded to the upstream server's ``/tokenize``, ``/detokenize`` and ``/tokenizer_info`` (vLLM serves them at
its root); an upstream without them gives a 400 that says so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel

from llmops.errors import InvalidInput
from llmops.serving.engines.upstream import UpstreamEngine, UpstreamError, UpstreamStream
from llmops.serving.gateway import CLIENT_CLOSED, Tally, Ticket
from llmops.serving.openai.streaming import DONE, error_event, event

Body = dict[str, Any]
#: The client's JSON body, read only when a request goes upstream (``Request.json`` of the route).
RawBody = Callable[[], Awaitable[Any]]


async def client_body(req: BaseModel, raw: RawBody | None) -> Body:
    """What the client sent: the raw JSON when the route passed it, else the fields the client set."""
    if raw is not None:
        data = await raw()
        if isinstance(data, dict):
            return data
    return req.model_dump(mode="json", exclude_unset=True)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def absorb(tally: Tally, body: Mapping[str, Any]) -> None:
    """A complete upstream answer's finish reasons and usage into the request's tally."""
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            finish = choice.get("finish_reason")
            tally.add_delta(
                _int(choice.get("index")),
                0,
                finish if isinstance(finish, str) else None,
                text if isinstance(text, str) else None,
            )
    usage = body.get("usage")
    if isinstance(usage, dict):
        tally.set_usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))


def _observe(tally: Tally, chunk: Mapping[str, Any]) -> None:
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        finish = choice.get("finish_reason")
        tally.add_delta(
            _int(choice.get("index")),
            1 if text else 0,
            finish if isinstance(finish, str) else None,
            text if isinstance(text, str) else None,
        )
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        tally.set_usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))


def _mid_stream_error(chunk: Mapping[str, Any]) -> UpstreamError:
    error = chunk.get("error")
    inner = error if isinstance(error, dict) else {}
    message = inner.get("message") if isinstance(inner.get("message"), str) else json.dumps(error)
    status = _int(inner.get("code")) or 500
    code = inner.get("code") if isinstance(inner.get("code"), str) else None
    status = status if 400 <= status < 600 else 500
    return UpstreamError(status, f"the upstream failed mid-stream: {message}", code=code)


async def relay(stream: UpstreamStream, ticket: Ticket, *, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """The upstream's events for the client (see the module docstring); settles ``ticket`` when it ends."""
    tally = ticket.tally
    try:
        async for payload in stream:
            if payload == "[DONE]":
                ticket.finish()
                yield DONE
                continue
            try:
                chunk = json.loads(payload)
            except ValueError as exc:
                raise UpstreamError(502, "the upstream sent an event that is not JSON") from exc
            if not isinstance(chunk, dict):
                raise UpstreamError(502, "the upstream sent an event that is not a JSON object")
            if "error" in chunk and "choices" not in chunk:
                ticket.fail(_mid_stream_error(chunk))
                yield event(chunk)
                continue
            _observe(tally, chunk)
            usage = chunk.get("usage")
            if not chunk.get("choices") and isinstance(usage, dict):  # the usage chunk: the stream's end
                cost = ticket.finish()
                if include_usage:
                    chunk["usage"] = {**usage, "cost": cost, "cost_currency": ticket.currency}
                    chunk["model"] = model
                    yield event(chunk)
                continue
            changed = False
            if not include_usage and "usage" in chunk:
                del chunk["usage"]
                changed = True
            if "model" in chunk and chunk["model"] != model:
                chunk["model"] = model
                changed = True
            yield event(chunk) if changed else b"data: " + payload.encode() + b"\n\n"
        ticket.finish()  # an upstream that ended without [DONE]
    except Exception as exc:
        ticket.fail(exc)
        yield error_event(exc)
        yield DONE
    finally:
        ticket.finish(CLIENT_CLOSED, "client_closed")  # the client went away (a no-op otherwise)
        await stream.aclose()


async def tokenizer_call(
    engine: UpstreamEngine, path: str, model: str, body: Body | None = None, params: dict[str, str] | None = None
) -> Body:
    """``/tokenize``, ``/detokenize`` (POST ``body``) or ``/tokenizer_info`` (GET) at the upstream's root."""
    url = f"{engine.root_url}/{path}"
    engine.check_ready()
    try:
        if body is None:
            answer = await engine.get(url, params=params)
        else:
            payload = {**body, "model": engine.upstream_model or model}
            result = await engine.post(url, payload)
            assert isinstance(result, dict)
            answer = result
    except UpstreamError as exc:
        if exc.status in (404, 405):
            raise InvalidInput(
                f"the upstream server of {model} has no /{path} endpoint (vLLM serves it; many others do not)",
                details={"code": "tokenizer_not_available", "param": "model"},
            ) from exc
        raise
    if "model" in answer:
        answer["model"] = model
    return answer


__all__ = ["RawBody", "absorb", "client_body", "relay", "tokenizer_call"]
