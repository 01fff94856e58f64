"""The vllm engine's command construction and the supervision of its server process (start, readiness,
restart after a crash, graceful stop), against a stand-in OpenAI-compatible process (no GPU here)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmops.errors import InvalidInput, Unavailable
from llmops.serving.engines.vllm import vllm_argv
from llmops.serving.supervisor import ProcessSpec, ProcessSupervisor
from tests.serving.conftest import run

STANDIN = Path(__file__).with_name("standin_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_engine_options_become_vllm_flags(tmp_path: Path) -> None:
    argv = vllm_argv(
        tmp_path / "model",
        served_name="chat",
        port=8123,
        options={
            "tensor_parallel_size": 4,
            "pipeline_parallel_size": 2,
            "max_model_len": 8192,
            "gpu_memory_utilization": 0.9,
            "enable_prefix_caching": True,
            "enable_chunked_prefill": False,
            "dtype": "bfloat16",
        },
    )
    assert argv[:3] == ["vllm", "serve", str(tmp_path / "model")]
    assert argv[3:9] == ["--served-model-name", "chat", "--host", "127.0.0.1", "--port", "8123"]
    flags = argv[9:]
    assert flags == [
        "--dtype", "bfloat16", "--no-enable-chunked-prefill", "--enable-prefix-caching",
        "--gpu-memory-utilization", "0.9", "--max-model-len", "8192", "--pipeline-parallel-size", "2",
        "--tensor-parallel-size", "4",
    ]  # fmt: skip
    custom = vllm_argv(tmp_path, served_name="m", port=1, options={"command": "python -m vllm.entrypoints.cli.main"})
    assert custom[:5] == ["python", "-m", "vllm.entrypoints.cli.main", "serve", str(tmp_path)]
    for reserved in ("port", "host", "trust_remote_code", "served-model-name"):
        with pytest.raises(InvalidInput, match=f"engine option {reserved} is set by the platform"):
            vllm_argv(tmp_path, served_name="m", port=1, options={reserved: True})


def _spec(tmp_path: Path, port: int, **env: str) -> ProcessSpec:
    argv = vllm_argv(
        tmp_path / "model", served_name="chat", port=port,
        options={"command": f"{sys.executable} {STANDIN}", "tensor_parallel_size": 2},
    )  # fmt: skip
    return ProcessSpec(
        argv=argv,
        base_url=f"http://127.0.0.1:{port}",
        env={"STANDIN_RECORD": str(tmp_path / "starts.jsonl"), **env},
        log_path=tmp_path / "engine.log",
        ready_timeout=30,
        stop_timeout=5,
    )


def test_start_ready_restart_after_sigkill_and_stop(tmp_path: Path) -> None:
    port = free_port()
    supervisor = ProcessSupervisor(_spec(tmp_path, port))

    async def scenario() -> None:
        await supervisor.start()
        assert supervisor.ready and supervisor.pid is not None
        first = supervisor.pid
        async with httpx.AsyncClient() as client:
            models = (await client.get(f"http://127.0.0.1:{port}/v1/models")).json()
            assert models["data"][0]["id"] == "chat"
            os.kill(first, signal.SIGKILL)  # the engine crashes
            deadline = time.monotonic() + 5
            while supervisor.ready and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not supervisor.ready  # not ready while it is down: the gateway answers 503
            deadline = time.monotonic() + 30
            while not supervisor.ready and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert supervisor.ready and supervisor.pid != first and supervisor.restarts == 1
            assert "exited with status -9" in (supervisor.last_error or "")
            answer = await client.post(f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "x"})
            assert answer.json()["choices"][0]["text"] == " from the stand-in"
        pid = supervisor.pid
        await supervisor.stop()
        assert supervisor.status == "stopped"
        assert pid is not None and not _alive(pid)

    run(scenario(), timeout=90)
    starts = [json.loads(line) for line in (tmp_path / "starts.jsonl").read_text().splitlines()]
    assert len(starts) == 2 and starts[0]["argv"][-2:] == ["--tensor-parallel-size", "2"]


def test_a_server_that_dies_while_starting_fails_with_its_output(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(_spec(tmp_path, free_port(), STANDIN_FAIL_START="1"))
    with pytest.raises(Unavailable, match=r"exited with status 3 while starting(.|\n)*failing on purpose"):
        run(supervisor.start(), timeout=60)
    assert supervisor.status == "failed"
    missing = ProcessSupervisor(ProcessSpec(argv=["/nonexistent/vllm", "serve"], base_url="http://127.0.0.1:9"))
    with pytest.raises(Unavailable, match="cannot start /nonexistent/vllm"):
        run(missing.start(), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone once its parent reaped it.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()
