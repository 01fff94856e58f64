"""Tokenization for engines that run a Hugging Face tokenizer in-process, and incremental detokenization.

``HFTokenizer`` adapts a transformers tokenizer to :class:`~llmops.serving.engines.base.EngineTokenizer`.
``IncrementalDetokenizer`` turns a stream of token ids into a stream of text deltas. Decoding one token at a
time is wrong for byte-level BPE (a character may span tokens) and for SentencePiece (a token's leading space
depends on its left neighbour), so it decodes a short window of ids and emits only what the newest token
added, holding back output while the window ends in an incomplete character. This is the
prefix/read-offset scheme of TGI and vLLM; the window starts with the last prompt tokens for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llmops.serving.engines.base import DEFAULT_CHAT_STOP, DEFAULT_CHAT_TEMPLATE

#: How many prompt tokens seed the detokenization window (vLLM uses the same number).
_WINDOW_SEED = 5
_REPLACEMENT = "\ufffd"


class HFTokenizer:
    """A transformers tokenizer behind the engine's tokenizer interface."""

    def __init__(self, tokenizer: Any, *, context_length: int, eos_token_ids: Iterable[int]) -> None:
        self._tok = tokenizer
        self._context_length = context_length
        self._eos = frozenset(int(t) for t in eos_token_ids)
        self._token_text: dict[int, str] = {}

    @property
    def hf_tokenizer(self) -> Any:
        """The wrapped transformers tokenizer, for callers that need more than the interface."""
        return self._tok

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self._tok, "chat_template", None))

    @property
    def chat_stop(self) -> tuple[str, ...]:
        return () if self.has_chat_template else DEFAULT_CHAT_STOP

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [int(t) for t in self._tok.encode(text, add_special_tokens=add_special_tokens)]

    def decode(self, token_ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(list(token_ids), skip_special_tokens=skip_special_tokens))

    def token_text(self, token_id: int) -> str:
        """The text of one token as logprobs report it (special tokens included); cached, it is asked often."""
        text = self._token_text.get(token_id)
        if text is None:
            text = self.decode([token_id], skip_special_tokens=False)
            self._token_text[token_id] = text
        return text

    def render_chat(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True, **template_kwargs: Any
    ) -> str:
        template = None if self.has_chat_template else DEFAULT_CHAT_TEMPLATE
        rendered = self._tok.apply_chat_template(
            [dict(m) for m in messages],
            chat_template=template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **template_kwargs,
        )
        return str(rendered)


class IncrementalDetokenizer:
    """Text deltas of a growing sequence of generated token ids (see the module docstring)."""

    def __init__(self, tokenizer: HFTokenizer, prompt_ids: Sequence[int], *, skip_special_tokens: bool) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._ids = list(prompt_ids[-_WINDOW_SEED:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def add(self, token_id: int) -> str:
        """Append a token; return the text it completes (possibly empty)."""
        self._ids.append(token_id)
        prefix = self._tok.decode(self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=self._skip)
        full = self._tok.decode(self._ids[self._prefix_offset :], skip_special_tokens=self._skip)
        if len(full) > len(prefix) and not full.endswith(_REPLACEMENT):
            self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
            return full[len(prefix) :]
        return ""

    def flush(self) -> str:
        """The text still held back (an incomplete character at the very end), emitted when the sequence ends."""
        prefix = self._tok.decode(self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=self._skip)
        full = self._tok.decode(self._ids[self._prefix_offset :], skip_special_tokens=self._skip)
        self._prefix_offset = self._read_offset = len(self._ids)
        return full[len(prefix) :] if len(full) > len(prefix) else ""


class StopStringBuffer:
    """The output text of one sequence, cut at the first stop string and held back while one could begin.

    A stop string may span tokens, so matching happens on text. Up to ``len(longest stop) - 1`` trailing
    characters are withheld from the stream until the next token shows they do not start a stop string;
    whatever is emitted can therefore never contain part of a stop string that completes later.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(stop)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self.text = ""
        self._emitted = 0

    def append(self, delta: str) -> str | None:
        """Add text; return the stop string that now occurs (the text is cut before it), else None."""
        if not delta:
            return None
        start = max(0, len(self.text) - self._hold)
        self.text += delta
        best: tuple[int, str] | None = None
        for stop in self._stop:
            at = self.text.find(stop, start)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, stop)
        if best is None:
            return None
        self.text = self.text[: best[0]]
        return best[1]

    def take(self, *, final: bool) -> str:
        """The next part of the text that is safe to emit (everything when the sequence has finished)."""
        end = len(self.text) if final else max(self._emitted, len(self.text) - self._hold)
        out = self.text[self._emitted : end]
        self._emitted = end
        return out


__all__ = ["HFTokenizer", "IncrementalDetokenizer", "StopStringBuffer"]
