"""Generation through the torch engine: greedy equivalence with ``model.generate``, batching, stops, limits.

The reference for every greedy check is transformers' own ``generate`` on the prompt alone; the engine runs
the same prompts concurrently (different lengths, joining mid-flight) through its slot cache and must
produce the same tokens, one for one.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from llmops.serving.engines import GenerationRequest
from llmops.serving.engines.torch_engine import TorchEngine
from tests.serving.conftest import collect, hf_greedy, load_model, run, text_of, token_ids

PROMPTS = [
    "The quick brown fox",
    "A model registry keeps every version of a model: the base checkpoint, each fine-tune",
    "Loading",
    "Fine-tuning changes weights only a little. The difference between a fine-tuned tensor and its base is small,",
    "模型注册表保存模型的每一个版本",
]


def test_greedy_matches_hf_generate_for_concurrent_prompts_of_mixed_lengths(
    engine: TorchEngine, llama_model: Any
) -> None:
    tok = engine.tokenizer
    prompts = [tok.encode(p) for p in PROMPTS]
    expected = [hf_greedy(llama_model, ids, 12) for ids in prompts]

    async def main() -> list[list[int]]:
        results = await asyncio.gather(
            *(collect(engine, GenerationRequest(ids, max_tokens=12, temperature=0.0)) for ids in prompts)
        )
        return [token_ids(chunks) for chunks in results]

    assert run(main()) == expected


def test_a_sequence_joining_mid_flight_changes_nothing(engine: TorchEngine, llama_model: Any) -> None:
    tok = engine.tokenizer
    first, second = tok.encode(PROMPTS[1]), tok.encode(PROMPTS[0])
    expected_first, expected_second = hf_greedy(llama_model, first, 30), hf_greedy(llama_model, second, 10)

    async def main() -> tuple[list[int], list[int], int]:
        stream = await engine.generate(GenerationRequest(first, max_tokens=30, temperature=0.0, ignore_eos=True))
        got_first: list[int] = []
        joined_at = -1
        late: asyncio.Task[Any] | None = None
        async for chunk in stream:
            got_first += chunk.token_ids
            if len(got_first) == 3:  # the first sequence is decoding: the second joins now
                late = asyncio.create_task(collect(engine, GenerationRequest(second, max_tokens=10, temperature=0.0)))
                joined_at = len(got_first)
        assert late is not None
        return got_first, token_ids(await late), joined_at

    got_first, got_second, joined_at = run(main())
    assert joined_at == 3
    assert got_first == expected_first[: len(got_first)] and len(got_first) == 30
    assert got_second == expected_second


def test_qwen2_greedy_matches_hf_generate(qwen2_dir: Path) -> None:
    model = load_model(qwen2_dir)
    engine = TorchEngine(qwen2_dir, max_batch_size=4)

    async def main() -> tuple[list[list[int]], list[list[int]]]:
        await engine.start()
        try:
            prompts = [engine.tokenizer.encode(p) for p in PROMPTS[:3]]
            expected = [hf_greedy(model, ids, 10) for ids in prompts]
            results = await asyncio.gather(
                *(collect(engine, GenerationRequest(ids, max_tokens=10, temperature=0.0)) for ids in prompts)
            )
            return expected, [token_ids(r) for r in results]
        finally:
            await engine.stop()

    expected, got = run(main())
    assert got == expected


def test_sixteen_concurrent_clients_all_complete_correctly(engine: TorchEngine, llama_model: Any) -> None:
    tok = engine.tokenizer
    prompts = [tok.encode(PROMPTS[i % len(PROMPTS)])[: 3 + i] for i in range(16)]
    expected = [hf_greedy(llama_model, ids, 8) for ids in prompts]

    async def main() -> list[list[int]]:
        results = await asyncio.gather(
            *(collect(engine, GenerationRequest(ids, max_tokens=8, temperature=0.0)) for ids in prompts)
        )
        for chunks in results:
            assert chunks[-1].finish_reason is not None and chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == len(token_ids(chunks))
        return [token_ids(r) for r in results]

    assert run(main()) == expected


def test_seeded_sampling_is_reproducible_alone_and_batched(engine: TorchEngine) -> None:
    def request(seed: int) -> GenerationRequest:
        return GenerationRequest(PROMPTS[0], max_tokens=16, temperature=1.0, top_p=0.9, top_k=50, seed=seed)

    async def main() -> tuple[list[int], list[int], list[int]]:
        alone = token_ids(await collect(engine, request(7)))
        others = [GenerationRequest(p, max_tokens=16, temperature=1.0) for p in PROMPTS[1:]]
        batched = await asyncio.gather(collect(engine, request(7)), *(collect(engine, r) for r in others))
        other_seed = token_ids(await collect(engine, request(8)))
        return alone, token_ids(batched[0]), other_seed

    alone, batched, other_seed = run(main())
    assert alone == batched
    assert alone != other_seed


def test_top_k_one_and_tiny_top_p_are_greedy(engine: TorchEngine) -> None:
    async def main() -> list[list[int]]:
        base = {"max_tokens": 10, "ignore_eos": True}
        greedy = collect(engine, GenerationRequest(PROMPTS[1], temperature=0.0, **base))  # type: ignore[arg-type]
        top_k = collect(engine, GenerationRequest(PROMPTS[1], temperature=1.5, top_k=1, seed=1, **base))  # type: ignore[arg-type]
        top_p = collect(engine, GenerationRequest(PROMPTS[1], temperature=1.5, top_p=1e-6, seed=2, **base))  # type: ignore[arg-type]
        return [token_ids(c) for c in await asyncio.gather(greedy, top_k, top_p)]

    greedy, top_k, top_p = run(main())
    assert greedy == top_k == top_p


def test_max_tokens_ends_with_length_and_counts_usage(engine: TorchEngine) -> None:
    chunks = run(collect(engine, GenerationRequest(PROMPTS[2], max_tokens=5, temperature=0.0, ignore_eos=True)))
    last = chunks[-1]
    assert last.finish_reason == "length" and last.usage is not None
    assert len(token_ids(chunks)) == 5 == last.usage.completion_tokens
    assert last.usage.prompt_tokens == len(engine.tokenizer.encode(PROMPTS[2]))
    assert last.usage.time_to_first_token is not None and last.usage.queue_time >= 0.0
    assert chunks[0].prompt_token_ids == tuple(engine.tokenizer.encode(PROMPTS[2]))
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_max_tokens_none_runs_to_the_context_limit(engine: TorchEngine) -> None:
    ids = engine.tokenizer.encode(PROMPTS[3])
    chunks = run(collect(engine, GenerationRequest(ids, max_tokens=None, temperature=0.0, ignore_eos=True)))
    assert chunks[-1].finish_reason == "length"
    assert len(ids) + len(token_ids(chunks)) == engine.tokenizer.context_length


def test_stop_string_spanning_tokens_is_cut_and_not_emitted(engine: TorchEngine) -> None:
    base = run(collect(engine, GenerationRequest(PROMPTS[0], max_tokens=40, temperature=0.0, ignore_eos=True)))
    full = text_of(base)
    texts = [c.text for c in base]
    # A stop string made of the last character of one delta and the first of the next spans two tokens.
    pairs = [(i, j) for i in range(len(texts) - 1) for j in (i + 1,) if texts[i] and texts[j]]
    assert pairs, f"no two consecutive non-empty deltas in {texts}"
    i, j = pairs[len(pairs) // 2]
    stop = texts[i][-1] + texts[j][0]
    expected = full[: full.find(stop)]

    chunks = run(collect(engine, GenerationRequest(PROMPTS[0], max_tokens=40, temperature=0.0, stop=[stop, "zzzz"])))
    assert chunks[-1].finish_reason == "stop" and chunks[-1].stop_reason == stop
    assert text_of(chunks) == expected
    assert stop not in text_of(chunks)


def test_stop_token_id_ends_the_sequence(engine: TorchEngine) -> None:
    base = token_ids(run(collect(engine, GenerationRequest(PROMPTS[1], max_tokens=8, temperature=0.0))))
    stop_id = base[3]
    chunks = run(
        collect(engine, GenerationRequest(PROMPTS[1], max_tokens=8, temperature=0.0, stop_token_ids=[stop_id]))
    )
    got = token_ids(chunks)
    assert got == base[: base.index(stop_id) + 1]
    assert chunks[-1].finish_reason == "stop" and chunks[-1].stop_reason == stop_id


def test_eos_from_generation_config_stops_unless_ignored(llama_dir: Path, llama_model: Any, tmp_path: Path) -> None:
    # Make the 4th greedy token an EOS of a copy of the model: the engine must stop there as generate does.
    from transformers import AutoTokenizer

    prompt = AutoTokenizer.from_pretrained(str(llama_dir)).encode(PROMPTS[1])
    plain = hf_greedy(llama_model, prompt, 10)
    eos = plain[3]
    model_dir = tmp_path / "eos-model"
    shutil.copytree(llama_dir, model_dir)
    gen_path = model_dir / "generation_config.json"
    gen = json.loads(gen_path.read_text())
    gen["eos_token_id"] = [gen["eos_token_id"], eos]
    gen_path.write_text(json.dumps(gen))
    reference = hf_greedy(load_model(model_dir), prompt, 10)
    engine = TorchEngine(model_dir, max_batch_size=2)

    async def main() -> tuple[Any, Any]:
        await engine.start()
        try:
            stopped = await collect(engine, GenerationRequest(prompt, max_tokens=10, temperature=0.0))
            ignored = await collect(engine, GenerationRequest(prompt, max_tokens=10, temperature=0.0, ignore_eos=True))
            return stopped, ignored
        finally:
            await engine.stop()

    stopped, ignored = run(main())
    assert token_ids(stopped) == reference == plain[: plain.index(eos) + 1]
    assert stopped[-1].finish_reason == "stop" and stopped[-1].stop_reason is None
    assert token_ids(ignored) == plain and ignored[-1].finish_reason == "length"


def test_unseeded_requests_still_sample(engine: TorchEngine) -> None:
    async def main() -> set[tuple[int, ...]]:
        runs = await asyncio.gather(
            *(collect(engine, GenerationRequest(PROMPTS[0], max_tokens=8, temperature=1.0)) for _ in range(4))
        )
        return {tuple(token_ids(r)) for r in runs}

    assert len(run(main())) > 1


def test_slot_refills_and_chunked_prefill_keep_outputs_exact(llama_dir: Path, llama_model: Any) -> None:
    # 3 slots for 8 requests finishing at different steps: finished slots are refilled by moving the last
    # sequence, and 5-token prefill chunks leave a half-prefilled sequence that must move along with them.
    engine = TorchEngine(llama_dir, max_batch_size=3, prefill_chunk_tokens=5)
    lengths = [3, 14, 6, 9, 2, 11, 5, 8]

    moves: list[tuple[int, int, int]] = []

    async def main() -> tuple[list[list[int]], list[list[int]]]:
        await engine.start()
        runner = engine.runner
        real_move = runner.move

        def move(src: int, dst: int, length: int) -> None:
            moves.append((src, dst, length))
            real_move(src, dst, length)

        runner.move = move  # type: ignore[method-assign]
        try:
            prompts = [engine.tokenizer.encode(PROMPTS[i % len(PROMPTS)])[: 4 + 3 * i] for i in range(len(lengths))]
            expected = [hf_greedy(llama_model, ids, n) for ids, n in zip(prompts, lengths, strict=True)]
            requests = [
                GenerationRequest(ids, max_tokens=n, temperature=0.0) for ids, n in zip(prompts, lengths, strict=True)
            ]
            results = await asyncio.gather(*(collect(engine, r) for r in requests))
            assert (await engine.health()).running == 0
            return expected, [token_ids(r) for r in results]
        finally:
            await engine.stop()

    expected, got = run(main())
    assert got == expected
    assert moves, "no slot was refilled by a move"
