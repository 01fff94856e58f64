"""Parent-side helpers: start a worker program with a platform's settings and follow its output."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from llmops.settings import Settings

WORKERS = Path(__file__).parent
REPO = WORKERS.parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``LLMOPS_*`` environment that reproduces ``settings`` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"LLMOPS_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class Worker:
    """A worker program in a child process; its stdout lines are collected by a reader thread."""

    def __init__(self, program: str, settings: Settings, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKERS / program), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=settings_env(settings),
            cwd=REPO,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not raw.endswith(b"\n"):
                break  # a line cut short by a kill was never acknowledged
            self._queue.put(raw.decode().rstrip("\n"))
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr.append(self.proc.stderr.read())

    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")[-4000:]

    def wait_for(self, prefix: str, *, count: int = 1, timeout: float = 90.0) -> list[str]:
        """Block until ``count`` lines starting with ``prefix`` have been read; return all of them."""
        deadline = time.monotonic() + timeout
        while sum(1 for line in self.lines if line.startswith(prefix)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"worker printed {len(self.lines)} lines, not {count} {prefix!r}: {self.stderr()}")
            try:
                line = self._queue.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=10)
                raise AssertionError(f"worker exited ({self.proc.returncode}) early: {self.stderr()}")
            self.lines.append(line)
        return [line for line in self.lines if line.startswith(prefix)]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL, wait for the process (so its pid is gone), then collect every line it had written."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.drain()

    def drain(self, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1.0)
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    break
                continue
            if line is None:
                break
            self.lines.append(line)
        return self.lines

    def finish(self, timeout: float = 120.0) -> list[str]:
        """Wait for a normal exit and return all lines; fail with the worker's stderr otherwise."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not finish within {timeout} s: {self.stderr()}") from None
        lines = self.drain()
        assert code == 0, f"worker exited with {code}: {self.stderr()}"
        return lines

    def stop(self) -> None:
        """Make sure the child is gone (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def run_together(
    processes: list[Worker],
    thread_work: list[Callable[[], dict[str, Any]]],
    *,
    ready_timeout: float = 180.0,
) -> list[dict[str, Any]]:
    """Start worker processes and in-process threads at the same moment; return every writer's result.

    Each process prints ``ready``, waits for ``go`` and ends with a JSON line (its result); each thread runs
    one ``thread_work`` callable after a barrier shared with this function, so all writers contend at once.
    """
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(thread_work) + 1, timeout=ready_timeout)

    def thread_main(work: Callable[[], dict[str, Any]]) -> None:
        barrier.wait()
        result = work()
        with lock:
            results.append(result)

    try:
        for worker in processes:
            worker.wait_for("ready", timeout=ready_timeout)
        threads = [threading.Thread(target=thread_main, args=(w,)) for w in thread_work]
        for thread in threads:
            thread.start()
        for worker in processes:
            worker.send("go")
        barrier.wait()
        for thread in threads:
            thread.join(timeout=300)
            assert not thread.is_alive()
        for worker in processes:
            results.append(json.loads(worker.finish(timeout=300)[-1]))
    finally:
        for worker in processes:
            worker.stop()
    return results
