"""A real gateway for API tests: the app under uvicorn in a thread, returned once ``/readyz`` answers 200.

``tests/serving/test_kserve.py`` uses it; ``test_openai_api.py`` has the same steps inline.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from tests.conftest import free_port


@contextlib.contextmanager
def serve(app: Any, timeout: float = 120.0) -> Iterator[str]:
    """Run ``app`` on a free port of 127.0.0.1 until the block ends; yields its base URL once it is ready."""
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the gateway did not become ready: {httpx.get(f'{url}/readyz').text}")
            time.sleep(0.1)
        yield url
    finally:
        uv.should_exit = True
        thread.join(30)
