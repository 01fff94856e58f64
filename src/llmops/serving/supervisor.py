"""Supervising an engine server process: start, readiness, restart on crash, graceful stop.

Engines that are separate servers (``vllm serve`` today) are started by the gateway on a loopback port and
then driven over HTTP like any OpenAI-compatible upstream. The supervisor owns the process:

- ``start`` launches it and waits until ``health_path`` answers 200 (loading a large model takes minutes,
  so the timeout is generous and configurable); a process that exits while starting fails the start with
  the tail of its output.
- a monitor task notices an exit the supervisor did not ask for, marks the engine not ready (so ``/readyz``
  and routing stop sending it requests: they get 503), and restarts it with exponential backoff (1 s, 2 s,
  4 s … at most ``max_backoff``); ``restarts`` counts them.
- ``stop`` sends SIGTERM (vLLM drains and exits), then SIGKILL after ``stop_timeout``.

Output goes to a log file next to the engine's state, whose tail is quoted in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from llmops.errors import Unavailable

log = logging.getLogger("llmops.serving")
Status = Literal["stopped", "starting", "ready", "restarting", "failed"]


@dataclass
class ProcessSpec:
    argv: Sequence[str]
    base_url: str  # where the server listens, e.g. http://127.0.0.1:8123
    health_path: str = "/health"
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    ready_timeout: float = 600.0
    stop_timeout: float = 30.0
    max_backoff: float = 30.0


class ProcessSupervisor:
    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.status: Status = "stopped"
        self.restarts = 0
        self.last_error: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    async def start(self) -> None:
        self._stopping = False
        await self._launch()
        self._monitor = asyncio.create_task(self._watch(), name=f"supervise-{self.spec.argv[0]}")

    async def _launch(self) -> None:
        self.status = "starting"
        out = open(self.spec.log_path, "ab") if self.spec.log_path else asyncio.subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **self.spec.env},
                start_new_session=True,  # its own process group: a stop reaches its workers too
            )
        except OSError as exc:
            self.status, self.last_error = "failed", f"cannot start {self.spec.argv[0]}: {exc}"
            raise Unavailable(self.last_error) from exc
        finally:
            if not isinstance(out, int):
                out.close()
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.spec.ready_timeout
        url = self.spec.base_url.rstrip("/") + self.spec.health_path
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.returncode is not None:
                    self.status = "failed"
                    self.last_error = f"exited with status {self._proc.returncode} while starting{self._tail()}"
                    raise Unavailable(f"engine server {self.spec.argv[0]} {self.last_error}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        self.status = "ready"
                        return
                await asyncio.sleep(0.2)
        self.status, self.last_error = "failed", f"not ready after {self.spec.ready_timeout:g} s{self._tail()}"
        await self._terminate()
        raise Unavailable(f"engine server {self.spec.argv[0]} {self.last_error}")

    async def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            self.status = "restarting"
            self.last_error = f"exited with status {code}{self._tail()}"
            log.warning(
                "engine server %s (pid %s) %s; restarting in %.0f s",
                self.spec.argv[0],
                self.pid,
                self.last_error,
                backoff,
            )
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            self.restarts += 1
            try:
                await self._launch()
                backoff = 1.0
            except Unavailable:
                backoff = min(backoff * 2, self.spec.max_backoff)
                self.status = "restarting"

    async def stop(self) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await self._terminate()
        self.status = "stopped"

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.spec.stop_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    def _tail(self, lines: int = 15) -> str:
        path = self.spec.log_path
        if path is None or not path.exists():
            return ""
        text = path.read_bytes()[-4000:].decode(errors="replace").splitlines()[-lines:]
        return ("; last output:\n" + "\n".join(text)) if text else ""
