"""Admission, abort, queue bounds, context limits and health of the torch engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import InvalidInput, QuotaExceeded, Unavailable
from llmops.serving.engines import Engine, GenerationRequest, ScoreRequest
from llmops.serving.engines.torch_engine import TorchEngine
from tests.serving.conftest import collect, run, token_ids


async def wait_idle(engine: TorchEngine, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = await engine.health()
        if health.running == 0 and health.waiting == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"engine still busy: {await engine.health()}")


def long_request(**kwargs: object) -> GenerationRequest:
    return GenerationRequest("The quick brown fox", max_tokens=100, temperature=0.0, ignore_eos=True, **kwargs)  # type: ignore[arg-type]


def test_closing_the_stream_aborts_and_frees_the_slot(engine: TorchEngine) -> None:
    async def main() -> tuple[int, list[int]]:
        stream = await engine.generate(long_request())
        seen = 0
        async for _chunk in stream:
            seen += 1
            if seen == 3:
                break
        await stream.aclose()
        await wait_idle(engine)
        after = await collect(engine, GenerationRequest("Loading", max_tokens=4, temperature=0.0, ignore_eos=True))
        return seen, token_ids(after)

    seen, after = run(main())
    assert seen == 3 and len(after) == 4


def test_cancelling_the_consumer_task_aborts_the_sequence(engine: TorchEngine) -> None:
    async def consume(started: asyncio.Event) -> None:
        stream = await engine.generate(long_request())
        async for _chunk in stream:
            started.set()

    async def main() -> int:
        started = asyncio.Event()
        tasks = [asyncio.create_task(consume(started)) for _ in range(3)]
        await started.wait()
        busy = (await engine.health()).running
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await wait_idle(engine)
        return busy

    assert run(main()) >= 1
    assert run(engine.health()).running == 0


def test_queue_full_is_quota_exceeded_with_retry_after(llama_dir: Path) -> None:
    engine = TorchEngine(llama_dir, max_batch_size=1, max_waiting=1)

    async def main() -> QuotaExceeded:
        await engine.start()
        try:
            running = await engine.generate(long_request())
            await running.__anext__()  # admitted: it holds the only slot
            waiting = await engine.generate(long_request())  # the one waiting place
            assert (await engine.health()).waiting == 1
            with pytest.raises(QuotaExceeded) as caught:
                await engine.generate(long_request())
            with pytest.raises(QuotaExceeded):
                await engine.score(ScoreRequest("Loading"))
            await running.aclose()
            rest = [c async for c in waiting]  # the queued request still completes
            assert rest[-1].finish_reason == "length"
            return caught.value
        finally:
            await engine.stop()

    error = run(main())
    assert error.status == 429 and error.details["code"] == "queue_full"
    assert isinstance(error.details["retry_after"], int) and 1 <= error.details["retry_after"] <= 60


def test_prompt_over_the_context_is_rejected_before_queueing(engine: TorchEngine) -> None:
    context = engine.tokenizer.context_length

    async def main() -> None:
        steps = (await engine.health()).steps
        for request in (
            GenerationRequest([5] * context, max_tokens=None),
            GenerationRequest([5] * (context - 10), max_tokens=11),
        ):
            with pytest.raises(InvalidInput) as caught:
                await engine.generate(request)
            assert caught.value.details["code"] == "context_length_exceeded"
            assert f"maximum context length is {context}" in caught.value.message
        with pytest.raises(InvalidInput):
            await engine.score(ScoreRequest([5] * (context + 1)))
        health = await engine.health()
        assert health.waiting == 0 and health.steps == steps
        # exactly full is fine
        chunks = await collect(engine, GenerationRequest([5] * (context - 3), max_tokens=3, ignore_eos=True))
        assert chunks[-1].finish_reason == "length"

    run(main())


def test_invalid_requests_are_invalid_input(engine: TorchEngine) -> None:
    bad: list[dict[str, Any]] = [
        {"max_tokens": 0},
        {"temperature": -1.0},
        {"top_p": 0.0},
        {"logprobs": 21},
        {"stop": "x"},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidInput):
            GenerationRequest("hi", **kwargs)
    with pytest.raises(InvalidInput) as caught:
        run(engine.generate(GenerationRequest([10**6])))
    assert caught.value.details["code"] == "invalid_token_ids"


def test_health_and_lifecycle(llama_dir: Path) -> None:
    engine = TorchEngine(llama_dir, model_name="probe", max_batch_size=2)
    as_protocol: Engine = engine  # mypy checks the conformance; torch_engine.py checks it too
    assert as_protocol.model_name == "probe"

    async def main() -> None:
        assert (await engine.health()).status == "stopped"
        with pytest.raises(Unavailable):
            await engine.generate(GenerationRequest("hi"))
        await engine.start()
        health = await engine.health()
        assert health.ready and health.model == "probe" and health.context_length == 128
        assert health.max_batch_size == 2 and health.running == 0 and health.waiting == 0
        stream = await engine.generate(long_request())
        first = await stream.__anext__()
        assert first.finish_reason is None
        await engine.stop(drain_timeout=0.0)  # running sequences end with "abort"
        rest = [c async for c in stream]
        assert rest[-1].finish_reason == "abort" and rest[-1].usage is not None
        assert (await engine.health()).status == "stopped"
        with pytest.raises(Unavailable):
            await engine.generate(GenerationRequest("hi"))

    run(main())


def test_stop_drains_running_sequences(llama_dir: Path) -> None:
    engine = TorchEngine(llama_dir, max_batch_size=2)

    async def main() -> str | None:
        await engine.start()
        task = asyncio.create_task(collect(engine, GenerationRequest("Loading", max_tokens=20, ignore_eos=True)))
        await asyncio.sleep(0.01)
        await engine.stop(drain_timeout=30.0)
        return (await task)[-1].finish_reason

    assert run(main()) == "length"


def test_chat_rendering_uses_the_documented_default_template(engine: TorchEngine) -> None:
    tok = engine.tokenizer
    assert not tok.has_chat_template and tok.chat_stop == ("<|im_end|>",)
    text = tok.render_chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
