"""The ``Engine`` interface: what every inference engine (torch, openai-upstream, vllm) offers the gateway.

The gateway speaks OpenAI and KServe; engines speak this. Keeping the interface in plain typed dataclasses
(not the HTTP schemas) lets each protocol map to it once and lets an engine be driven directly from Python,
from tests and from evaluation jobs without an HTTP hop.

Decisions that shape the interface:

- ``generate`` is a coroutine that *returns* a stream. Awaiting it validates the request, tokenizes the prompt
  and admits it to the engine's queue, so that a prompt over the context limit (``InvalidInput`` with
  ``details["code"] == "context_length_exceeded"``) or a full queue (``QuotaExceeded`` with
  ``details["retry_after"]`` in seconds) is raised *before* the gateway has sent a single byte of a streamed
  response, and the right HTTP status can still be chosen.
- Closing the stream (``aclose()``) or cancelling a pending ``__anext__`` (a client that disconnects cancels
  the task serving it) aborts the sequence: the engine drops it at its next step and frees its slot.
- ``n`` (several choices per prompt) is handled *above* the engine: the gateway issues ``n`` requests, with
  seeds ``seed + i`` when a seed is given. Without a prefix cache an engine gains nothing from knowing that
  ``n`` sequences share a prompt, and one request per sequence keeps every engine's contract the same.
- Logprobs are those of the raw model distribution (log-softmax of the logits before temperature, top-k and
  top-p), as vLLM reports them by default (``logprobs_mode="raw_logprobs"``), so that numbers agree whichever
  engine serves a route. ``rank`` is the 1-based rank of the token in that distribution.
- Embeddings are not part of this protocol: an embedding engine has nothing to generate, so it gets its own
  small protocol next to this one instead of a fat base full of ``NotImplementedError``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from llmops.errors import InvalidInput

FinishReason = Literal["stop", "length", "abort"]
#: ``unavailable``: not serving for now but recovering on its own (an upstream that does not answer, a supervised
#: engine server being restarted); the manager keeps such an engine and probes it again instead of replacing it.
EngineStatus = Literal["starting", "ready", "unavailable", "stopping", "stopped", "failed"]

#: Upper bound of ``logprobs`` and ``prompt_logprobs`` (vLLM's default ``max_logprobs``).
MAX_LOGPROBS = 20


def new_request_id() -> str:
    """A random request id; the gateway passes its own so that logs and records line up."""
    return f"req-{uuid.uuid4().hex}"


# --- requests -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationRequest:
    """One sequence to generate.

    ``prompt`` is text (tokenized by the engine with ``add_special_tokens``) or token ids (used as given).
    ``max_tokens=None`` means "until the context is full". ``temperature=0`` is greedy decoding; ``top_k`` of
    0 or -1 and ``top_p`` of 1 disable those filters. ``logprobs=k`` returns, for every generated token, its
    logprob and the ``k`` most likely alternatives (``k=0``: the chosen token only); ``prompt_logprobs=k``
    does the same for the prompt tokens (the first prompt token has none), which is what ``echo`` needs.
    The stop strings themselves are never part of the returned text.
    """

    prompt: str | Sequence[int]
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: Sequence[str] = ()
    stop_token_ids: Sequence[int] = ()
    ignore_eos: bool = False
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    add_special_tokens: bool = True
    skip_special_tokens: bool = True
    request_id: str = field(default_factory=new_request_id)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if isinstance(self.prompt, str):
            pass
        elif not all(isinstance(t, int) and not isinstance(t, bool) for t in self.prompt):
            problems.append("prompt must be a string or a list of token ids")
        elif len(self.prompt) == 0:
            problems.append("prompt must not be empty")
        if self.max_tokens is not None and self.max_tokens < 1:
            problems.append("max_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 100.0:
            problems.append("temperature must be between 0 and 100")
        if not 0.0 < self.top_p <= 1.0:
            problems.append("top_p must be in (0, 1]")
        if self.top_k < -1:
            problems.append("top_k must be -1, 0 (disabled) or positive")
        if isinstance(self.stop, str):
            problems.append("stop must be a list of strings, not a string")
        elif any(not isinstance(s, str) or s == "" for s in self.stop):
            problems.append("stop strings must be non-empty strings")
        for name, value in (("logprobs", self.logprobs), ("prompt_logprobs", self.prompt_logprobs)):
            if value is not None and not 0 <= value <= MAX_LOGPROBS:
                problems.append(f"{name} must be between 0 and {MAX_LOGPROBS}")
        if problems:
            raise InvalidInput("; ".join(problems), details={"code": "invalid_request", "problems": problems})

    @property
    def greedy(self) -> bool:
        """Greedy decoding: deterministic whatever the seed."""
        return self.temperature == 0.0


@dataclass(frozen=True)
class ScoreRequest:
    """Logprobs of every token of a text under the model: ``echo`` and lm-evaluation-harness loglikelihood."""

    prompt: str | Sequence[int]
    top_logprobs: int = 0
    add_special_tokens: bool = True
    request_id: str = field(default_factory=new_request_id)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) and len(self.prompt) == 0:
            raise InvalidInput("prompt must not be empty", details={"code": "invalid_request"})
        if not 0 <= self.top_logprobs <= MAX_LOGPROBS:
            raise InvalidInput(
                f"top_logprobs must be between 0 and {MAX_LOGPROBS}", details={"code": "invalid_request"}
            )


# --- responses ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopLogprob:
    """One alternative at a position: a token and its logprob."""

    token_id: int
    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """The logprob of the token at a position, its rank, and the most likely alternatives there."""

    token_id: int
    token: str
    logprob: float
    rank: int
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Token counts and timings of one request (seconds; time to first token is None when none came)."""

    prompt_tokens: int
    completion_tokens: int
    queue_time: float
    time_to_first_token: float | None
    total_time: float

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class GenerationChunk:
    """A delta of one sequence: the tokens produced since the previous chunk and their text.

    ``text`` may be empty while the engine holds back characters that could start a stop string or
    complete a multi-byte character. The first chunk carries ``prompt_token_ids`` (and ``prompt_logprobs``
    when asked). The last chunk has ``finish_reason`` and ``usage``; ``stop_reason`` is the stop string or
    stop token id that ended the sequence (None for EOS, length and abort).
    """

    request_id: str
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None
    finish_reason: FinishReason | None = None
    stop_reason: str | int | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class ScoreResult:
    """Per-token logprobs of a prompt; the first token has no logprob (nothing precedes it)."""

    request_id: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob | None, ...]

    @property
    def total_logprob(self) -> float:
        return sum(lp.logprob for lp in self.logprobs if lp is not None)


@dataclass(frozen=True)
class EngineHealth:
    """What readiness probes and ``/metrics`` gauges need from an engine."""

    status: EngineStatus
    model: str
    context_length: int
    running: int = 0
    waiting: int = 0
    max_batch_size: int = 0
    max_waiting: int = 0
    steps: int = 0
    last_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"


# --- protocols ----------------------------------------------------------------------------------------------
@runtime_checkable
class GenerationStream(Protocol):
    """The stream ``generate`` returns: an async iterator of chunks that aborts its sequence when closed.

    Python async generators satisfy it, so an engine may implement ``generate`` with one.
    """

    def __aiter__(self) -> AsyncIterator[GenerationChunk]: ...

    async def __anext__(self) -> GenerationChunk: ...

    async def aclose(self) -> None: ...


class EngineTokenizer(Protocol):
    """Tokenization as the gateway needs it: encode, decode, context length and chat rendering.

    ``render_chat`` uses the model's chat template, or :data:`DEFAULT_CHAT_TEMPLATE` (ChatML) when it has none;
    ``chat_stop`` lists the stop strings the rendered format needs beyond EOS (``<|im_end|>`` for the default
    template, whose end marker an untrained model does not know as its EOS token).
    """

    @property
    def context_length(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    @property
    def has_chat_template(self) -> bool: ...

    @property
    def chat_stop(self) -> tuple[str, ...]: ...

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, token_ids: Sequence[int], *, skip_special_tokens: bool = True) -> str: ...

    def token_text(self, token_id: int) -> str: ...

    def render_chat(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True, **template_kwargs: Any
    ) -> str: ...


class Engine(Protocol):
    """An inference engine serving one model version.

    Lifecycle: ``await start()`` loads the model and returns once the engine answers requests; ``await
    stop(drain_timeout)`` stops admitting, lets running sequences finish for up to ``drain_timeout`` seconds,
    then aborts the rest (their last chunk has ``finish_reason="abort"``).
    """

    @property
    def model_name(self) -> str: ...

    @property
    def tokenizer(self) -> EngineTokenizer: ...

    async def start(self) -> None: ...

    async def stop(self, drain_timeout: float = 0.0) -> None: ...

    async def generate(self, request: GenerationRequest) -> GenerationStream: ...

    async def score(self, request: ScoreRequest) -> ScoreResult: ...

    async def health(self) -> EngineHealth: ...


#: The chat template used when a model ships none: ChatML, the format most open chat models were trained on
#: and the one transformers used as its default template until it removed defaults. Messages are
#: ``{"role", "content"}`` with string content; the generation prompt opens an assistant turn.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
DEFAULT_CHAT_STOP = ("<|im_end|>",)

__all__ = [
    "DEFAULT_CHAT_STOP",
    "DEFAULT_CHAT_TEMPLATE",
    "MAX_LOGPROBS",
    "Engine",
    "EngineHealth",
    "EngineStatus",
    "EngineTokenizer",
    "FinishReason",
    "GenerationChunk",
    "GenerationRequest",
    "GenerationStream",
    "ScoreRequest",
    "ScoreResult",
    "TokenLogprob",
    "TopLogprob",
    "Usage",
    "new_request_id",
]
