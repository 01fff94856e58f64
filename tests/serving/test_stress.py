"""Overload: 200 streaming clients for 60 seconds against a real ``llmops serve`` serving the reference model.

What must hold when demand far exceeds capacity: the gateway refuses what it cannot queue with 429 and a
``Retry-After`` (never a 5xx, never a dropped connection), the requests it admits stream to the end (role
chunk, content, finish reason, usage, ``[DONE]``), and its memory does not grow with the number of requests
served. Capacity is made small on purpose: the deployment's engine decodes at most ``MAX_BATCH`` sequences
and queues ``MAX_WAITING`` more, so 200 clients exceed it about eightfold. Clients wait out ``Retry-After``
(at most one second) after a 429, as well-behaved clients do, so refusals keep arriving all run long.

Memory: the server's RSS is sampled every half second during the load; the median of the last third of the
samples must stay within ``max(20 %, 50 MB)`` of the median of the first third (the first third already
includes the warm-up of 200 connections and the engine's working set, so growth after it is a leak).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.serving.loadgen import LoadGenerator, Sampling, Target, status_class, synthetic_prompts
from llmops.settings import Settings
from tests.conftest import free_port
from tests.serving.conftest import run

REFERENCE_LM = Path(__file__).resolve().parents[2] / "assets" / "reference-lm"
DEPLOYMENT = "stress"
CLIENTS = 200
SECONDS = 60.0
MAX_BATCH = 8
MAX_WAITING = 16
MAX_TOKENS = 24
#: Allowed growth of the RSS median from the first to the last third of the run: the larger of these.
RSS_GROWTH_FRACTION = 0.20
RSS_GROWTH_BYTES = 50 * 1024 * 1024


@dataclass
class Gateway:
    url: str
    key: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    home = tmp_path / "home"
    platform = Platform(Settings(home=home))
    admin = local_admin()
    platform.registry.import_model(admin, REFERENCE_LM, name="reference-lm")
    options: dict[str, str | int | float | bool] = {"max_batch_size": MAX_BATCH, "max_waiting": MAX_WAITING}
    platform.deployments.deploy(admin, DEPLOYMENT, model="reference-lm:1", engine_options=options)
    platform.security.create_principal(admin, "load")
    key = platform.security.create_key(admin, principal="load").key
    platform.close()
    env = {
        **os.environ,
        "LLMOPS_HOME": str(home),
        "LLMOPS_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    port = free_port()
    log = tmp_path / "serve.log"
    llmops = str(Path(sys.executable).parent / "llmops")
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen([llmops, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"llmops serve exited: {log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"llmops serve did not become ready: {log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield Gateway(url, key, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(420)
def test_200_streaming_clients_for_60_seconds(gateway: Gateway) -> None:
    target = Target(gateway.url, DEPLOYMENT, "chat", api_key=gateway.key)
    generator = LoadGenerator(target, Sampling(max_tokens=MAX_TOKENS, ignore_eos=True), timeout=120)
    prompts = synthetic_prompts(64, seed=0)
    warm = run(generator.warmup(prompts[:4], concurrency=4), timeout=120)
    assert all(r.complete for r in warm), [r.error for r in warm]

    load = generator.run_clients(
        prompts, clients=CLIENTS, seconds=SECONDS, max_retry_wait=1.0, rss_pid=gateway.proc.pid
    )
    done = run(load, timeout=SECONDS + 180)
    summary = done.summary()
    print(  # the numbers the report quotes (pytest -s shows them)
        f"\nstress: {len(done.results)} requests, statuses {summary.status_counts}, exact {summary.statuses}, "
        f"max in flight {summary.max_in_flight}, {summary.output_throughput:.1f} output tok/s, "
        f"median TTFT {summary.ttft.median:.0f} ms, p99 E2EL {summary.e2el.percentiles[99.0]:.0f} ms, rss {done.rss}"
    )
    assert gateway.proc.poll() is None, "the server died under load"
    assert summary.max_in_flight == CLIENTS
    counts = summary.status_counts
    assert counts["5xx"] == 0, summary.errors
    others = [(r.status, r.error) for r in done.results if status_class(r.status) == "other"]
    assert counts["other"] == 0, others  # no 4xx besides 429, no dropped or refused connections
    assert counts["429"] > 0 and summary.retry_after_missing == 0
    assert counts["2xx"] >= MAX_BATCH
    refused = [r for r in done.results if r.status == 429]
    assert all(int(r.retry_after or "0") >= 1 for r in refused)
    served = [r for r in done.results if r.status == 200]
    incomplete = [r for r in served if not (r.complete and r.role == "assistant" and r.usage_seen)]
    assert not incomplete, [(r.error, r.finish_reason, r.done) for r in incomplete[:5]]
    assert all(r.output_tokens == MAX_TOKENS and r.finish_reason == "length" for r in served)

    rss = done.rss
    assert rss is not None and rss["samples"] >= 30
    first, last = rss["first_third_median"], rss["last_third_median"]
    allowed = max(first * RSS_GROWTH_FRACTION, RSS_GROWTH_BYTES)
    assert last - first <= allowed, f"RSS grew from {first / 2**20:.0f} MiB to {last / 2**20:.0f} MiB"
