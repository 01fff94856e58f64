"""Logprobs of generated tokens, prompt logprobs (``echo``) and ``score``, checked against direct forward passes.

The engine reports logprobs of the raw distribution (log-softmax of the logits, before temperature and
filters), as vLLM does by default; the reference here is the model's own forward pass over the whole text.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from llmops.serving.engines import GenerationRequest, ScoreRequest, TokenLogprob
from llmops.serving.engines.torch_engine import TorchEngine
from tests.serving.conftest import collect, run, token_ids

PROMPT = "A model registry keeps every version of a model"


def reference_logprobs(model: Any, ids: list[int]) -> torch.Tensor:
    """``[len(ids), vocab]`` log-softmax of the logits at each position, from one uncached forward pass."""
    with torch.inference_mode():
        rows: torch.Tensor = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        return rows


def check_entry(entry: TokenLogprob, row: torch.Tensor, k: int) -> None:
    assert math.isclose(entry.logprob, float(row[entry.token_id]), abs_tol=1e-4)
    assert entry.rank == int((row > row[entry.token_id]).sum()) + 1
    assert len(entry.top) == k
    assert sum(math.exp(t.logprob) for t in entry.top) <= 1.0 + 1e-5
    assert [t.logprob for t in entry.top] == sorted((t.logprob for t in entry.top), reverse=True)
    assert [t.token_id for t in entry.top] == row.topk(k).indices.tolist()
    for alt in entry.top:
        assert math.isclose(alt.logprob, float(row[alt.token_id]), abs_tol=1e-4)


def test_sampled_token_logprobs_equal_a_direct_forward_pass(engine: TorchEngine, llama_model: Any) -> None:
    prompt = engine.tokenizer.encode(PROMPT)
    request = GenerationRequest(prompt, max_tokens=10, temperature=1.3, seed=11, logprobs=5, ignore_eos=True)
    chunks = run(collect(engine, request))
    generated = token_ids(chunks)
    entries = [e for c in chunks for e in (c.logprobs or ())]
    assert [e.token_id for e in entries] == generated
    rows = reference_logprobs(llama_model, prompt + generated)
    for i, entry in enumerate(entries):
        check_entry(entry, rows[len(prompt) - 1 + i], 5)
        assert entry.token == engine.tokenizer.token_text(entry.token_id)


def test_greedy_tokens_have_rank_one_and_logprobs_zero_means_chosen_only(engine: TorchEngine) -> None:
    chunks = run(collect(engine, GenerationRequest(PROMPT, max_tokens=6, temperature=0.0, logprobs=0)))
    entries = [e for c in chunks for e in (c.logprobs or ())]
    assert len(entries) == len(token_ids(chunks))
    assert all(e.rank == 1 and e.top == () for e in entries)
    plain = run(collect(engine, GenerationRequest(PROMPT, max_tokens=3, temperature=0.0)))
    assert all(c.logprobs is None for c in plain)


def test_score_equals_a_direct_forward_pass(engine: TorchEngine, llama_model: Any) -> None:
    ids = engine.tokenizer.encode(PROMPT)
    result = run(engine.score(ScoreRequest(ids, top_logprobs=3)))
    assert result.token_ids == tuple(ids)
    assert result.logprobs[0] is None
    rows = reference_logprobs(llama_model, ids)
    for i, entry in enumerate(result.logprobs[1:], start=1):
        assert entry is not None and entry.token_id == ids[i]
        check_entry(entry, rows[i - 1], 3)
    expected_total = sum(float(rows[i - 1, ids[i]]) for i in range(1, len(ids)))
    assert math.isclose(result.total_logprob, expected_total, abs_tol=1e-3)


def test_prompt_logprobs_of_generate_match_score_across_prefill_chunks(llama_dir: Any, llama_model: Any) -> None:
    # A 7-token prefill chunk splits the prompt, so prompt logprobs are assembled across chunk boundaries.
    engine = TorchEngine(llama_dir, max_batch_size=2, prefill_chunk_tokens=7)

    async def main() -> tuple[Any, Any, list[int]]:
        await engine.start()
        try:
            ids = engine.tokenizer.encode(PROMPT + ", the base checkpoint, each fine-tune")
            chunks = await collect(engine, GenerationRequest(ids, max_tokens=2, temperature=0.0, prompt_logprobs=2))
            scored = await engine.score(ScoreRequest(ids, top_logprobs=2))
            return chunks, scored, ids
        finally:
            await engine.stop()

    chunks, scored, ids = run(main())
    assert len(ids) > 14
    echoed = chunks[0].prompt_logprobs
    assert echoed is not None and len(echoed) == len(ids) and echoed[0] is None
    for got, want in zip(echoed[1:], scored.logprobs[1:], strict=True):
        assert got is not None and want is not None
        assert got.token_id == want.token_id and got.rank == want.rank
        assert math.isclose(got.logprob, want.logprob, abs_tol=1e-4)
        assert [t.token_id for t in got.top] == [t.token_id for t in want.top]
    assert all(c.prompt_logprobs is None for c in chunks[1:])
    # and the generated tokens still match generate after a chunked prefill
    from tests.serving.conftest import hf_greedy

    assert token_ids(chunks) == hf_greedy(llama_model, ids, 2)
