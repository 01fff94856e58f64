"""A real gateway for API tests: the app under uvicorn in a thread, returned once ``/readyz`` answers 200.

``test_openai_api.py``, ``test_gateway_policies.py`` and ``test_kserve.py`` start their servers with it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from llmops.platform import Platform
from llmops.security.actor import Actor, local_admin
from llmops.settings import Settings
from tests.conftest import free_port
from tests.registry import factory


def platform_with_models(home: Path, llama_dir: Path) -> tuple[Platform, Actor]:
    """A platform at ``home`` holding lm:1 (``llama_dir``), lm:2 (the same shape, other weights) and emb:1
    (the shipped MiniLM): what the API tests deploy."""
    platform = Platform(Settings(home=home))
    admin = local_admin()
    other = factory.make_causal_lm(home / "other", "llama", tokenizer_dir=llama_dir, seed=7)
    platform.registry.import_model(admin, llama_dir, name="lm")
    platform.registry.import_model(admin, other, name="lm")
    platform.registry.import_model(admin, factory.minilm_dir(), name="emb")
    return platform, admin


def start(
    app: Any, make_server: Callable[[uvicorn.Config], uvicorn.Server] = uvicorn.Server, timeout: float = 120.0
) -> tuple[str, uvicorn.Server]:
    """Run ``app`` under ``make_server`` (a uvicorn server class or factory) on a free port of 127.0.0.1 in a
    daemon thread and wait until ``/readyz`` answers 200; returns the base URL and the server."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = make_server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    uv.llmops_thread = thread  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return url, uv
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            uv.should_exit = True
            pytest.fail(f"the gateway did not become ready: {httpx.get(f'{url}/readyz').text}")
        time.sleep(0.05)


def stop(uv: uvicorn.Server) -> None:
    uv.should_exit = True
    uv.llmops_thread.join(30)  # type: ignore[attr-defined]


@contextlib.contextmanager
def serve(app: Any, timeout: float = 120.0) -> Iterator[str]:
    """Run ``app`` on a free port of 127.0.0.1 until the block ends; yields its base URL once it is ready."""
    url, uv = start(app, timeout=timeout)
    try:
        yield url
    finally:
        stop(uv)
