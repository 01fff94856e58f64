"""A real server and a real browser for the UI tests.

- ``server``: one platform (embedded stack) with an admin and a viewer key and two finished training
  runs, served by uvicorn on 127.0.0.1 in a background thread for the whole session.
- ``models``: a family of tiny real models (``tests/ui/tiny_models.py``: a base, a fine-tune, a LoRA merge,
  alias moves) imported into that platform on first use; only the model page tests pay for building it.
- ``browser``: Debian's headless Chromium driven by Playwright (its own browser download is not used).
- ``ui``: a fresh browser context per test that records console errors, uncaught page errors and every
  request; at teardown the test fails on any of them that it did not expect, and on any request to a
  host other than the server (the UI must work without internet: no CDN, no fonts, no analytics).

Nothing here skips: a missing Chromium is a failure. Set ``LLMOPS_TEST_SCREENSHOTS=<dir>`` to keep
screenshots of the main pages.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Request, sync_playwright

from llmops.api.app import create_app
from llmops.api.deps import SESSION_COOKIE
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.settings import Settings
from tests.conftest import free_port
from tests.ui.tiny_models import Family, import_family, model_dirs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEPS = 50
EVAL_EVERY = 10
HOST = "127.0.0.1"


def baseline_loss(step: int) -> float:
    return 2.5 * math.exp(-0.03 * step) + 0.2


def high_lr_loss(step: int) -> float:
    return 2.5 * math.exp(-0.08 * step) + 0.1


@dataclass(frozen=True)
class Server:
    base_url: str
    admin_key: str
    viewer_key: str
    baseline_id: str
    high_lr_id: str
    platform: Platform


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    platform = Platform(Settings(home=tmp_path_factory.mktemp("ui") / "home"))
    bootstrap = local_admin(via="cli")
    platform.security.create_principal(bootstrap, "ada", role="admin", email="ada@example.org")
    platform.security.create_principal(bootstrap, "vic", role="viewer")
    admin_key = platform.security.create_key(bootstrap, principal="ada", name="laptop").key
    viewer_key = platform.security.create_key(bootstrap, principal="vic").key

    ids = []
    for name, lr, loss in (("baseline", 0.001, baseline_loss), ("high-lr", 0.01, high_lr_loss)):
        with platform.start_run(
            kind="train",
            name=name,
            params={"lr": lr, "batch_size": 32, "optimizer": "adamw"},
            tags={"team": "nlp"},
        ) as run:
            for step in range(STEPS):
                run.log_metric("loss", loss(step), step=step)
                if step % EVAL_EVERY == 0:
                    run.log_metric("eval/loss", loss(step) + 0.05, step=step)
            run.log_text(f"{name} finished\n", "reports/summary.txt")
            run.add_input("dataset_version", "corpus:1")
            ids.append(run.id)

    port = free_port()
    config = uvicorn.Config(create_app(platform=platform), host=HOST, port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="ui-test-server", daemon=True)
    thread.start()
    base_url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the UI test server did not answer /healthz within 20 s")
        time.sleep(0.05)
    yield Server(base_url, admin_key, viewer_key, ids[0], ids[1], platform)
    uv.should_exit = True
    thread.join(timeout=10)
    platform.close()


@pytest.fixture(scope="session")
def models(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Family:
    return import_family(server.platform, model_dirs(tmp_path_factory))


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class UI:
    """One browser context on the test server, and what it saw."""

    server: Server
    context: BrowserContext
    page: Page
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def url(self, path: str) -> str:
        return self.server.base_url + path

    def goto(self, path: str) -> None:
        self.page.goto(self.url(path))

    def sign_in(self, key: str, *, path: str = "/login") -> None:
        """Sign in through the form (the page must be at the form already when ``path`` is empty)."""
        if path:
            self.goto(path)
        self.page.get_by_test_id("login-key").fill(key)
        with self.page.expect_navigation():
            self.page.get_by_test_id("login-submit").click()

    def use_key(self, key: str) -> None:
        """Hold the session cookie the sign-in form would set (for tests about other pages: faster)."""
        self.context.add_cookies(
            [
                {
                    "name": SESSION_COOKIE,
                    "value": key,
                    "url": self.server.base_url,
                    "httpOnly": True,
                    "sameSite": "Strict",
                }
            ]
        )

    def expect_status(self, status: int) -> None:
        """The test deliberately loads a page answering ``status`` (Chromium logs it as a console error)."""
        self.allowed_statuses.add(status)

    def screenshot(self, name: str) -> None:
        directory = os.environ.get("LLMOPS_TEST_SCREENSHOTS")
        if directory:
            self.page.screenshot(path=str(Path(directory) / f"ui-{name}.png"), full_page=True)

    def unexpected_console_errors(self) -> list[str]:
        pattern = re.compile(r"status of (\d{3})")
        out = []
        for text in self.console_errors:
            match = pattern.search(text)
            if match and int(match.group(1)) in self.allowed_statuses:
                continue
            out.append(text)
        return out


@pytest.fixture
def ui(server: Server, browser: Browser) -> Iterator[UI]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    state = UI(server=server, context=context, page=page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            state.console_errors.append(message.text)

    def on_request(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or parts.hostname != HOST:
            state.foreign_requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: state.console_errors.append(f"uncaught: {exc}"))
    context.on("request", on_request)
    yield state
    context.close()
    assert not state.unexpected_console_errors(), f"console errors: {state.unexpected_console_errors()}"
    assert not state.foreign_requests, f"requests to other hosts: {state.foreign_requests}"
