"""Token sampling for a batch of sequences, each with its own parameters and random generator.

One call handles a whole decode step: greedy rows take the argmax of the raw logits; sampled rows divide by
their temperature, drop tokens outside their top-k and top-p (one sort for the whole batch, as vLLM does),
and draw with their own ``torch.Generator``. Drawing is the exponential race (``argmax(p / q)`` with
``q ~ Exp(1)``), which samples exactly from ``p`` and consumes the same amount of randomness per step
whatever the batch holds, so a seeded request yields the same tokens alone or batched with others.

Logprobs are computed from the raw logits (before temperature and filters), as vLLM reports them by default
(``logprobs_mode="raw_logprobs"``): the chosen token's logprob, its 1-based rank, and the top alternatives.
Nothing else (no repetition penalties, no logit bias) is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class RowParams:
    """Sampling parameters of one row; ``top_k <= 0`` and ``top_p >= 1`` disable the filters."""

    temperature: float
    top_p: float
    top_k: int
    generator: torch.Generator
    logprobs: int | None = None


@dataclass(frozen=True)
class RowLogprobs:
    """Raw-distribution logprobs at one position: the chosen token's, its rank, and the top alternatives."""

    logprob: float
    rank: int
    top_ids: tuple[int, ...]
    top_logprobs: tuple[float, ...]


@dataclass(frozen=True)
class SampleResult:
    token_ids: list[int]
    logprobs: list[RowLogprobs | None]


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or from the OS when there is none."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def _filter_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor | None, top_p: torch.Tensor | None) -> torch.Tensor:
    """Set logits outside each row's top-k / top-p nucleus to -inf (one ascending sort for the batch)."""
    sorted_logits, order = logits.sort(dim=-1, descending=False)
    vocab = logits.shape[-1]
    if top_k is not None:
        kth = (vocab - top_k).clamp(min=0, max=vocab - 1).unsqueeze(1)
        threshold = sorted_logits.gather(1, kth)
        sorted_logits = sorted_logits.masked_fill(sorted_logits < threshold, float("-inf"))
    if top_p is not None:
        probs = sorted_logits.softmax(dim=-1)
        cumulative = probs.cumsum(dim=-1)
        drop = cumulative <= (1.0 - top_p).unsqueeze(1)
        drop[:, -1] = False  # the most likely token always stays
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(sorted_logits).scatter_(1, order, sorted_logits)


def _raw_logprobs(logits: torch.Tensor, chosen: torch.Tensor, k: int) -> list[RowLogprobs]:
    """Logprobs of the chosen tokens (and top-``k`` alternatives) under the unmodified distribution."""
    logprobs = logits.log_softmax(dim=-1)
    chosen_lp = logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1)
    ranks = (logprobs > chosen_lp.unsqueeze(1)).sum(dim=1) + 1
    if k > 0:
        top_lp, top_ids = logprobs.topk(k, dim=-1)
        top_lp_list, top_ids_list = top_lp.tolist(), top_ids.tolist()
    else:
        top_lp_list = top_ids_list = [[] for _ in range(logits.shape[0])]
    return [
        RowLogprobs(logprob=float(lp), rank=int(r), top_ids=tuple(ti), top_logprobs=tuple(tl))
        for lp, r, ti, tl in zip(chosen_lp.tolist(), ranks.tolist(), top_ids_list, top_lp_list, strict=True)
    ]


def sample(logits: torch.Tensor, rows: Sequence[RowParams]) -> SampleResult:
    """Pick one token per row of ``logits`` (``[n, vocab]``) with each row's parameters."""
    logits = logits.float()
    n, vocab = logits.shape
    if n != len(rows):
        raise ValueError(f"{n} rows of logits for {len(rows)} parameter sets")
    chosen = torch.empty(n, dtype=torch.long)
    greedy = [i for i, r in enumerate(rows) if r.temperature == 0.0]
    sampled = [i for i, r in enumerate(rows) if r.temperature != 0.0]
    if greedy:
        index = torch.tensor(greedy, dtype=torch.long)
        chosen[index] = logits.index_select(0, index).argmax(dim=-1)
    if sampled:
        index = torch.tensor(sampled, dtype=torch.long)
        params = [rows[i] for i in sampled]
        temps = torch.tensor([p.temperature for p in params], dtype=torch.float32)
        scaled = logits.index_select(0, index) / temps.unsqueeze(1)
        top_k = None
        if any(0 < p.top_k < vocab for p in params):
            top_k = torch.tensor([p.top_k if 0 < p.top_k < vocab else vocab for p in params], dtype=torch.long)
        top_p = None
        if any(p.top_p < 1.0 for p in params):
            top_p = torch.tensor([p.top_p for p in params], dtype=torch.float32)
        if top_k is not None or top_p is not None:
            scaled = _filter_top_k_top_p(scaled, top_k, top_p)
        probs = scaled.softmax(dim=-1)
        for j, (row, p) in enumerate(zip(sampled, params, strict=True)):
            race = torch.empty(vocab, dtype=torch.float32).exponential_(generator=p.generator)
            chosen[row] = (probs[j] / race).argmax()
    logprobs: list[RowLogprobs | None] = [None] * n
    wanted = [i for i, r in enumerate(rows) if r.logprobs is not None]
    if wanted:
        index = torch.tensor(wanted, dtype=torch.long)
        k = max(rows[i].logprobs or 0 for i in wanted)
        computed = _raw_logprobs(logits.index_select(0, index), chosen.index_select(0, index), k)
        for i, row_lp in zip(wanted, computed, strict=True):
            own_k = rows[i].logprobs or 0
            logprobs[i] = RowLogprobs(row_lp.logprob, row_lp.rank, row_lp.top_ids[:own_k], row_lp.top_logprobs[:own_k])
    return SampleResult(token_ids=chosen.tolist(), logprobs=logprobs)


def prompt_logprobs(logits: torch.Tensor, next_ids: torch.Tensor, k: int) -> list[RowLogprobs]:
    """Logprobs of ``next_ids[i]`` under the distribution at position ``i`` (``logits`` is ``[n, vocab]``)."""
    return _raw_logprobs(logits.float(), next_ids.long(), k)


__all__ = ["RowLogprobs", "RowParams", "SampleResult", "make_generator", "prompt_logprobs", "sample"]
