"""Child servers of the benchmarks: free ports, waiting for a server to answer, stopping it, its CPU time, and
``llmops serve`` in front of an OpenAI-compatible upstream.

The gateway, serving and request-logging benchmarks each start servers as child processes on 127.0.0.1 and
stop them at the end; one copy of that code keeps their start-up checks, timeouts and CPU accounting the same.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

UPSTREAM_MODEL = "upstream-lm"
"""The model name the upstream serves (the stand-in's ``--served-model-name``)."""
DEPLOYMENT = "chat"
"""The llmops deployment in front of the upstream."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path | None, n: int = 1500) -> str:
    """The end of a child's log file (for an error message)."""
    return path.read_text(errors="replace")[-n:] if path is not None and path.exists() else ""


def wait_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen[bytes],
    *,
    headers: dict[str, str] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``url`` until it answers 200; fail at once when ``proc`` exits (with ``log``'s tail, if given)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before {url} answered{_log_tail(log)}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s{_log_tail(log)}")


def _log_tail(log: Path | None) -> str:
    return f"; log tail: {tail(log)}" if log is not None else ""


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """SIGTERM (a gateway drains and flushes), then SIGKILL after ``timeout`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``), with its reaped children's if
    ``reaped_children``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11 : 15 if reaped_children else 13])  # utime, stime[, cutime, cstime]
    return ticks / os.sysconf("SC_CLK_TCK")


def upstream_gateway(
    home: Path,
    port: int,
    *,
    upstream: str,
    env: dict[str, str],
    monitoring: dict[str, Any] | None = None,
    deployment: str = DEPLOYMENT,
    upstream_model: str = UPSTREAM_MODEL,
) -> tuple[subprocess.Popen[bytes], str]:
    """An llmops home with an ``openai-upstream`` deployment (rate limits far above any run, per-token prices)
    and an API key, then ``llmops serve`` on it, output in ``home/serve.log``. Returns the process and key."""
    from llmops.platform import Platform
    from llmops.security.actor import local_admin
    from llmops.settings import Settings

    platform = Platform(Settings(home=home))
    admin = local_admin()
    policies: dict[str, Any] = {
        "rate_limit": {"requests_per_minute": 100_000_000, "tokens_per_minute": 1_000_000_000},
        "pricing": {"input_per_million": 0.5, "output_per_million": 1.5},
    }
    if monitoring is not None:
        policies["monitoring"] = monitoring
    platform.deployments.deploy(
        admin,
        deployment,
        model=None,
        engine="openai-upstream",
        engine_options={"base_url": upstream, "model": upstream_model},
        **policies,
    )
    platform.security.create_principal(admin, "bench")
    key = platform.security.create_key(admin, principal="bench").key
    platform.close()
    child_env = {**os.environ, "LLMOPS_HOME": str(home), "LLMOPS_LOG_LEVEL": "info", **env}
    cli = Path(sys.executable).with_name("llmops")
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - the child process writes to it
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port)], env=child_env, stdout=log, stderr=subprocess.STDOUT
    )
    wait_http(f"http://127.0.0.1:{port}/readyz", 120, proc, log=home / "serve.log")
    return proc, key
