"""Request models of the OpenAI-compatible API (and vLLM's tokenizer endpoints).

Bounds follow OpenAI where it documents them (temperature 0..2, top_p in (0, 1], logprobs 0..20 as vLLM's
``max_logprobs``); unknown fields are ignored, as vLLM and OpenAI ignore them. Fields the engines cannot
honour (penalties, logit bias, tools, suffix) are refused with a 400 instead of being silently dropped.
Responses are plain dictionaries built in ``serving`` (the hot path serializes them with ``json.dumps``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops.serving.engines.base import MAX_LOGPROBS

#: Most choices per prompt (``n``): each is its own engine sequence.
MAX_N = 16
#: Most stop strings per request.
MAX_STOP = 16

TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
Prompt = str | list[str] | TokenIds | list[TokenIds]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(Lenient):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class Sampling(Lenient):
    """Fields shared by completions and chat completions."""

    model: Annotated[str, Field(min_length=1, max_length=128)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 1
    stop: str | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STOP)] | None = None
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    ignore_eos: bool = False
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None

    @model_validator(mode="after")
    def _supported(self) -> Sampling:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise ValueError(f"{name} is not supported by this server; leave it unset or 0")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by this server")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options can only be set when stream is true")
        return self

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(Sampling):
    prompt: Prompt
    max_tokens: Annotated[int, Field(ge=0)] | None = 16
    logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS)] | None = None
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None
    add_special_tokens: bool = True

    @model_validator(mode="after")
    def _check(self) -> CompletionRequest:
        if self.prompt == "" or self.prompt == []:
            raise ValueError("prompt must not be empty")
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens must be at least 1 (0 is allowed only with echo, to score the prompt)")
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError("best_of is not supported by this server; leave it unset")
        if self.suffix:
            raise ValueError("suffix is not supported by this server")
        return self

    def prompts(self) -> list[str | list[int]]:
        """The prompt as a list of prompts (text or token ids)."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return [x if isinstance(x, str) else [int(t) for t in x] for x in p if not isinstance(x, int)]


class TextPart(Lenient):
    type: Literal["text"]
    text: str


class ChatMessage(Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: Annotated[str, Field(max_length=64)] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ResponseFormat(Lenient):
    type: Literal["text"]


class ChatCompletionRequest(Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS)] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    response_format: ResponseFormat | None = None
    add_generation_prompt: bool = True
    add_special_tokens: bool = False
    chat_template_kwargs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ChatCompletionRequest:
        if self.tools:
            raise ValueError("tools are not supported by this server")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs set to true")
        return self

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class EmbeddingRequest(Lenient):
    model: Annotated[str, Field(min_length=1, max_length=128)]
    input: Prompt
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None

    @model_validator(mode="after")
    def _check(self) -> EmbeddingRequest:
        if self.input == "" or self.input == []:
            raise ValueError("input must not be empty")
        return self

    def inputs(self) -> list[str | list[int]]:
        i = self.input
        if isinstance(i, str):
            return [i]
        if all(isinstance(x, int) for x in i):
            return [list(i)]  # type: ignore[arg-type]
        return [x if isinstance(x, str) else [int(t) for t in x] for x in i if not isinstance(x, int)]


class TokenizeRequest(Lenient):
    """vLLM's ``/tokenize``: a ``prompt`` (completion form) or ``messages`` (chat form)."""

    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _check(self) -> TokenizeRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt and messages")
        return self


class DetokenizeRequest(Lenient):
    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    tokens: list[Annotated[int, Field(ge=0)]]
