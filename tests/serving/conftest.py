"""Fixtures for the engine tests: tiny real Hugging Face models and engines started on them.

The model directories come from :mod:`tests.registry.factory` (a 300-token byte-level BPE and a two-layer,
hidden-64 Llama or Qwen2 with random weights), so the engine is tested against the real transformers
modelling code. Engines are module-scoped: a start costs about a second, and the engine is built to serve
many event loops (each test runs its own with ``asyncio.run``), since its scheduler thread hands results to
whichever loop submitted a request.
"""

from __future__ import annotations

import os

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
from collections.abc import Coroutine, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from llmops.serving.engines import GenerationChunk, GenerationRequest  # noqa: E402
from llmops.serving.engines.torch_engine import TorchEngine  # noqa: E402
from tests.registry import factory  # noqa: E402

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run a coroutine on a fresh event loop in a worker thread, failing instead of hanging.

    A thread of its own, because the main thread may already run a loop: Playwright's sync API (the e2e
    tests, earlier in the same session) leaves one set there, and ``asyncio.run`` refuses to nest.
    """

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, bounded()).result()


async def collect(engine: TorchEngine, request: GenerationRequest) -> list[GenerationChunk]:
    stream = await engine.generate(request)
    return [chunk async for chunk in stream]


def token_ids(chunks: list[GenerationChunk]) -> list[int]:
    return [t for c in chunks for t in c.token_ids]


def text_of(chunks: list[GenerationChunk]) -> str:
    return "".join(c.text for c in chunks)


def hf_greedy(model: Any, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """What ``model.generate`` produces alone, greedily: the reference the engine must match token for token."""
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    return [int(t) for t in out[0, len(prompt_ids) :]]


def load_model(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    return model


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factory.make_causal_lm(tmp_path_factory.mktemp("serving") / "tiny-llama", "llama")


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Path:
    return factory.make_causal_lm(tmp_path_factory.mktemp("serving") / "tiny-qwen2", "qwen2", tokenizer_dir=llama_dir)


@pytest.fixture(scope="session")
def llama_model(llama_dir: Path) -> Any:
    """A separate copy of the model for references, so that tests never share the engine's model object."""
    return load_model(llama_dir)


@pytest.fixture(scope="module")
def engine(llama_dir: Path) -> Iterator[TorchEngine]:
    eng = TorchEngine(llama_dir, model_name="tiny-llama", max_batch_size=16, max_waiting=64)
    run(eng.start())
    yield eng
    run(eng.stop())
