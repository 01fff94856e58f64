"""The exact-match response cache (opt-in per deployment with ``response_cache: true``).

A response is reused only when it is a function of the request: greedy decoding (``temperature`` 0), a fixed
``seed``, prompt scoring (``max_tokens`` 0 with ``echo``) or embeddings. The key is a SHA-256 over the
endpoint, the deployment, the registry version that serves the caller and the request body normalized by its
schema (defaults filled in, keys sorted; ``user``, ``stream`` and ``stream_options`` left out), so a
reordered or defaulted field still hits, while a canary user never gets the primary's answer. Streams are
never cached or served from the cache (a replayed stream would fake its timing and its usage chunk; the
client asked to watch tokens arrive). Entries live in the shared ``Counters`` (Redis when configured, so every
gateway replica shares them) for ``ttl`` seconds; bodies over ``max_bytes`` are not stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from llmops.serving.openai.schemas import CompletionRequest, EmbeddingRequest, Sampling

EXCLUDED = frozenset({"user", "stream", "stream_options", "model"})
MAX_BYTES = 1 << 20


def cacheable(req: BaseModel) -> bool:
    """Whether the response to ``req`` is deterministic (and not a stream)."""
    if isinstance(req, EmbeddingRequest):
        return True
    if not isinstance(req, Sampling) or req.stream:
        return False
    if isinstance(req, CompletionRequest) and req.max_tokens == 0:
        return True  # scoring the prompt
    return req.temperature == 0 or req.seed is not None


def cache_key(endpoint: str, deployment: str, version: str | None, req: BaseModel) -> str:
    body = req.model_dump(mode="json", exclude=set(EXCLUDED))
    text = json.dumps([endpoint, deployment, version, body], sort_keys=True, separators=(",", ":"))
    return "respcache:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    body: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int

    def encode(self) -> bytes:
        payload = {"body": self.body, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> CachedResponse | None:
        try:
            payload = json.loads(data)
            return cls(payload["body"], int(payload["prompt_tokens"]), int(payload["completion_tokens"]))
        except (ValueError, KeyError, TypeError):
            return None  # an entry from another build: a miss


__all__ = ["MAX_BYTES", "CachedResponse", "cache_key", "cacheable"]
