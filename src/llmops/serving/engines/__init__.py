"""Inference engines behind the :class:`~llmops.serving.engines.base.Engine` protocol.

``base`` defines the interface and its request/response types; ``torch_engine`` is the embedded default
(continuous batching over a slot KV cache, see ``slot_cache`` and ``scheduler``). The torch engine is imported
lazily so that the gateway can use the interface types without importing torch and transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops.serving.engines.base import (
    DEFAULT_CHAT_STOP,
    DEFAULT_CHAT_TEMPLATE,
    Engine,
    EngineHealth,
    EngineTokenizer,
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    GenerationStream,
    ScoreRequest,
    ScoreResult,
    TokenLogprob,
    TopLogprob,
    Usage,
)

if TYPE_CHECKING:
    from llmops.serving.engines.torch_engine import TorchEngine


def __getattr__(name: str) -> Any:
    if name == "TorchEngine":
        from llmops.serving.engines.torch_engine import TorchEngine

        return TorchEngine
    raise AttributeError(name)


__all__ = [
    "DEFAULT_CHAT_STOP",
    "DEFAULT_CHAT_TEMPLATE",
    "Engine",
    "EngineHealth",
    "EngineTokenizer",
    "FinishReason",
    "GenerationChunk",
    "GenerationRequest",
    "GenerationStream",
    "ScoreRequest",
    "ScoreResult",
    "TokenLogprob",
    "TopLogprob",
    "TorchEngine",
    "Usage",
]
