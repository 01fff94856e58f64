"""The request writers in their own process (``LLMOPS_REQUEST_WRITER=process``): records served through a real
gateway are stored and logged exactly once; a writer process killed mid-run loses (and counts) its batch for
each writer and a new one takes over; hung, it is killed after the reply timeout; a database outage counts
under ``DatabaseWriter`` while the log goes on; and the writer process never outlives the gateway."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.monitoring.schemas import RequestQuery
from llmops.monitoring.writer_process import WriterConfig, WriterProcess
from llmops.serving.records import BufferedSink, LogWriter, RequestRecord
from tests.conftest import free_port
from tests.monitoring.records import record
from tests.monitoring.test_gateway_monitoring import metric
from tests.serving.conftest import (
    llama_dir,  # noqa: F401 - the session fixture, shared with the serving tests
    run,
)
from tests.serving.test_gateway_policies import Server, manager_for, new_platform, start, wait_for


def gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie waiting for its new parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def log_lines(text: str) -> list[dict[str, object]]:
    """The JSON request records in captured output (``… llmops.requests: {…}``)."""
    marker = " llmops.requests: "
    return [json.loads(line.split(marker, 1)[1]) for line in text.splitlines() if marker in line]


def writer_of(server: Server) -> WriterProcess:
    sink: BufferedSink = server.app.state.records
    [writer] = [w for w in sink.writers if isinstance(w, WriterProcess)]
    return writer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Iterator[Server]:  # noqa: F811
    platform, admin, keys = new_platform(tmp_path_factory.mktemp("writer"), llama_dir, request_writer="process")
    platform.deployments.deploy(admin, "logged", model="lm:1", monitoring={"capture_text": True})
    srv = start(platform, manager_for(platform), keys, admin)
    yield srv
    srv.stop()
    platform.close()


def serve_some(server: Server, count: int, who: str = "alice") -> list[str]:
    """``count`` completions, one after another; their request ids."""
    ids = []
    for i in range(count):
        r = server.post("/v1/completions", {"model": "logged", "prompt": f"mail me at a{i}@example.com"}, who=who)
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-request-id"])
    return ids


def stored_ids(server: Server) -> set[str]:
    rows = server.platform.requests.list_requests(RequestQuery(deployment="logged", limit=1000))
    return {r.request_id for r in rows}


def test_records_are_stored_and_logged_by_the_writer_process(server: Server, capfd: pytest.CaptureFixture[str]) -> None:
    writer = writer_of(server)
    ids = serve_some(server, 12)
    wait_for(lambda: stored_ids(server) >= set(ids))
    assert writer.pid is not None and writer.pid != os.getpid()
    sink: BufferedSink = server.app.state.records
    wait_for(lambda: sink.pending == 0)
    # exactly once each: one row and one JSON line per request, nothing lost
    assert len(stored_ids(server) & set(ids)) == 12
    lines = [line for line in log_lines(capfd.readouterr().err) if line["deployment"] == "logged"]
    assert sorted(str(line["request_id"]) for line in lines) == sorted(ids)
    assert all(line["status"] == 200 and "prompt" not in line for line in lines)  # texts never reach the log
    [detail] = server.platform.requests.get(ids[0])
    assert detail.prompt == "mail me at <EMAIL>" and detail.redactions == {"EMAIL": 1}  # redacted in the child
    assert sink.failed_by == {} and metric(server.url, "llmops_records_failed_total", writer="DatabaseWriter") == 0


def test_a_killed_writer_process_loses_its_batch_and_is_replaced(server: Server) -> None:
    writer = writer_of(server)
    sink: BufferedSink = server.app.state.records
    warm = serve_some(server, 1)
    wait_for(lambda: stored_ids(server) >= set(warm) and sink.written == sink.emitted)
    before = {"emitted": sink.emitted, "rows": len(stored_ids(server)), "starts": writer.starts}
    first = writer.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: gone(first), timeout=5)

    lost = serve_some(server, 1, who="bob")  # the batch sent to the dead process
    wait_for(lambda: sink.failed_by.get("DatabaseWriter", 0) >= 1)
    assert sink.failed_by == {"LogWriter": 1, "DatabaseWriter": 1}
    assert metric(server.url, "llmops_records_failed_total", writer="DatabaseWriter") == 1
    assert metric(server.url, "llmops_records_failed_total", writer="LogWriter") == 1
    later = serve_some(server, 5)
    wait_for(lambda: stored_ids(server) >= set(later), timeout=30)  # a new writer process started
    assert writer.pid not in (None, first) and writer.starts == before["starts"] + 1
    assert not stored_ids(server) & set(lost)
    wait_for(lambda: sink.written == sink.emitted)
    emitted = sink.emitted - before["emitted"]
    rows = len(stored_ids(server)) - before["rows"]
    assert emitted == 6 and rows + sink.failed_by["DatabaseWriter"] == emitted
    assert sink.dropped == 0


def test_database_outage_and_a_hung_writer_process(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """No database behind the URL: the store fails per batch, the log goes on, the process stays. Then the
    process stops answering (SIGSTOP): after the reply timeout it is killed, its batch counted, and replaced."""
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    writer = WriterProcess(WriterConfig(log=True, database_url=dead), reply_timeout=2.0)
    sink = BufferedSink([writer], batch_size=10, flush_interval=0.02)
    records: list[RequestRecord] = [record() for _ in range(26)]

    async def scenario() -> tuple[int | None, int | None, int | None]:
        await sink.start()
        for r in records[:20]:
            sink.emit(r)
        while sink.pending or sink.failed_by.get("DatabaseWriter", 0) < 20:
            await asyncio.sleep(0.02)
        first = writer.pid
        assert first is not None
        os.kill(first, signal.SIGSTOP)  # alive, but answers nothing
        for r in records[20:25]:
            sink.emit(r)
        while sink.failed_by.get("LogWriter", 0) < 5:
            await asyncio.sleep(0.05)
        hung = writer.pid  # the hung process was killed; none runs until the next batch
        sink.emit(records[25])
        await sink.stop(timeout=30)
        return first, hung, writer.pid

    with caplog.at_level(logging.WARNING, logger="llmops.serving"):
        first, hung, after_stop = run(scenario())
    assert first is not None and gone(first) and hung is None and after_stop is None
    assert sink.failed_by == {"DatabaseWriter": 26, "LogWriter": 5}
    assert writer.starts == 2 and sink.written == sink.emitted == 26
    logged = [line["request_id"] for line in log_lines(capfd.readouterr().err)]
    assert sorted(logged) == sorted(r.request_id for r in records[:20] + records[25:])
    assert any("writer DatabaseWriter failed (OperationalError: " in m for m in caplog.messages)
    assert any("answered nothing within 2 s (killed by signal Killed)" in m for m in caplog.messages)


def test_the_writer_process_exits_with_its_gateway(tmp_path: Path) -> None:
    """A gateway killed with SIGKILL cannot close anything: the writer process sees EOF and exits by itself."""
    owner = textwrap.dedent(
        """
        import asyncio, sys, time
        from llmops.monitoring.writer_process import WriterConfig, WriterProcess
        from tests.monitoring.records import record

        writer = WriterProcess(WriterConfig(log=True, database_url=None, log_level="WARNING"))
        assert asyncio.run(writer.write_all([record()])) == {"LogWriter": None}
        print(writer.pid, flush=True)
        time.sleep(120)
        """
    )
    root = Path(__file__).resolve().parents[2]
    gateway = subprocess.Popen(
        [sys.executable, "-c", owner], stdout=subprocess.PIPE, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}
    )
    try:
        assert gateway.stdout is not None
        pid = int(gateway.stdout.readline())
        assert not gone(pid)
        gateway.kill()
        gateway.wait(10)
        deadline = time.monotonic() + 5
        while not gone(pid):
            assert time.monotonic() < deadline, f"writer process {pid} outlived its gateway"
            time.sleep(0.05)
    finally:
        gateway.kill()
        gateway.wait(10)


def test_the_writers_are_built_where_the_setting_says(tmp_path: Path) -> None:
    from llmops.api.app import create_app
    from llmops.monitoring.writer import DatabaseWriter
    from llmops.platform import Platform
    from llmops.settings import Settings

    def writers(**settings: object) -> list[object]:
        platform = Platform(Settings(home=tmp_path / "home", **settings))  # type: ignore[arg-type]
        try:
            return list(create_app(platform=platform).state.records.writers)
        finally:
            platform.close()

    [process] = writers(request_writer="process")
    assert isinstance(process, WriterProcess) and process.names == ("LogWriter", "DatabaseWriter")
    assert process.pid is None  # nothing served, nothing started
    [only_log] = writers(request_writer="process", request_store=False)
    assert isinstance(only_log, WriterProcess) and only_log.names == ("LogWriter",)
    assert [type(w) for w in writers(request_writer="thread")] == [LogWriter, DatabaseWriter]
    assert writers(request_log=False, request_store=False) == []
