"""Gateway overhead: what llmops adds in front of an OpenAI-compatible server, against LiteLLM's proxy.

What is measured, and why
-------------------------
Users put a proxy in front of vLLM for keys, limits, routing and cost; the proxy must cost little. Here the
upstream answers at once (a minimal asyncio HTTP/1.1 server on 127.0.0.1 that returns a canned chat
completion, started as a subprocess by this script), so everything above its latency is the proxy's. Three
targets, each in its own process, all on the same upstream:

``direct``   the upstream itself (the baseline);
``llmops``   ``llmops serve`` with an ``openai-upstream`` deployment on it, called with an llmops API key, a
             per-key rate limit (requests and tokens per minute) far above what the run sends, per-token
             pricing and request logging on (one JSON record per request, ``LLMOPS_REQUEST_LOG``);
``litellm``  LiteLLM's proxy (``litellm --config``) in its own venv (``/tmp/litellm-venv``, never this
             project's), with a master key, the same upstream as an ``openai/`` model with an ``rpm`` limit far
             above the run, and its default logging. Per-key limits and spend logs need LiteLLM's database
             (Postgres through Prisma); they are not configured, which favours LiteLLM. When LiteLLM cannot
             be installed or started, the JSON and the table say why.

Workload: non-streamed ``POST /v1/chat/completions`` (one short user message, ``max_tokens`` 8) with an
aiohttp client in this process. Per round and target: a warm-up, ``--requests`` requests one at a time
(latency: p50 and p99; *added* latency is the target's percentile minus the direct one's), then
``--concurrency`` clients for ``--seconds`` seconds (requests per second; any non-200 is counted as an
error). Rounds interleave the targets so that other load on the machine hits all of them alike.

Run:  ``.venv/bin/python benchmarks/gateway_overhead.py [--requests 300] [--concurrency 32] [--seconds 8]
[--rounds 2] [--litellm /tmp/litellm-venv/bin/litellm | --no-litellm]``
Writes ``benchmarks/results/gateway_overhead.json``. Default run: about three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, machine_info, utc_now, write_result  # noqa: E402
from _servers import DEPLOYMENT, UPSTREAM_MODEL, free_port, stop, upstream_gateway, wait_http  # noqa: E402

from llmops.percentiles import percentile  # noqa: E402

LITELLM_KEY = "sk-bench-litellm"
MESSAGES = [{"role": "user", "content": "Hello, how are you today?"}]


# --- the upstream: a minimal HTTP/1.1 server that answers at once -------------------------------------------
def _canned(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "I am fine, thank you."},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        }
    ).encode()


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: keep-alive\r\n\r\n" + body


class _Upstream(asyncio.Protocol):
    models = json.dumps({"object": "list", "data": [{"id": UPSTREAM_MODEL, "object": "model"}]}).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path = head.split(" ", 2)[:2]
            self.transport.write(self._answer(method, path, body))

    def _answer(self, method: str, path: str, body: bytes) -> bytes:
        if method == "GET" and path in ("/health", "/v1/health"):
            return _response("200 OK", b"{}")
        if method == "GET" and path == "/v1/models":
            return _response("200 OK", self.models)
        if method == "POST" and path == "/v1/chat/completions":
            model = json.loads(body or b"{}").get("model", UPSTREAM_MODEL)
            return _response("200 OK", _canned(model))
        return _response("404 Not Found", b'{"error": {"message": "not found"}}')


def serve_upstream(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- processes ----------------------------------------------------------------------------------------------
def start_litellm(binary: Path, workdir: Path, upstream: str, port: int) -> subprocess.Popen[bytes]:
    config = {
        "model_list": [
            {
                "model_name": DEPLOYMENT,
                "litellm_params": {
                    "model": f"openai/{UPSTREAM_MODEL}",
                    "api_base": upstream,
                    "api_key": "none",
                    "rpm": 100_000_000,
                    "input_cost_per_token": 0.5e-6,
                    "output_cost_per_token": 1.5e-6,
                },
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
    }
    path = workdir / "litellm.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
    log = open(workdir / "litellm.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(binary), "--config", str(path), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", 240, proc)
    return proc


# --- load ---------------------------------------------------------------------------------------------------
async def measure(url: str, body: dict[str, Any], headers: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    payload = json.dumps(body).encode()
    headers = {**headers, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    errors: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            start = time.perf_counter()
            async with session.post(url, data=payload, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1
            return time.perf_counter() - start

        for _ in range(args.warmup):
            await one()
        latencies = [await one() for _ in range(args.requests)]
        done = 0
        deadline = time.perf_counter() + args.seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await one()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "completed": done, "seconds": elapsed, "errors": errors}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for r in runs for x in r["latencies"]]
    rates = [r["completed"] / r["seconds"] for r in runs]
    errors: dict[str, int] = {}
    for r in runs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 3),
            "p99": round(percentile(latencies, 99) * 1000, 3),
            "mean": round(statistics.fmean(latencies) * 1000, 3),
            "samples": len(latencies),
        },
        "requests_per_second": {"median": round(statistics.median(rates), 1), "rounds": [round(r, 1) for r in rates]},
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per round (latency)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each throughput phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--litellm", type=Path, default=Path("/tmp/litellm-venv/bin/litellm"))
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return

    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="gateway-overhead-"))
    up_port, gw_port, ll_port = free_port(), free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}/v1"
    procs: list[subprocess.Popen[bytes]] = []
    targets: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}
    litellm: dict[str, Any] = {"binary": str(args.litellm)}
    try:
        upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)])
        procs.append(upstream)
        wait_http(f"{upstream_url}/models", 30, upstream)
        body = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "max_tokens": 8}
        targets["direct"] = (f"{upstream_url}/chat/completions", body, {})
        gateway, key = upstream_gateway(
            work / "llmops", gw_port, upstream=upstream_url, env={"LLMOPS_REQUEST_LOG": "true"}
        )
        procs.append(gateway)
        gw_body = {**body, "model": DEPLOYMENT}
        gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        targets["llmops"] = (gw_url, gw_body, {"Authorization": f"Bearer {key}"})
        if args.no_litellm:
            litellm["skipped"] = "--no-litellm"
        elif not args.litellm.exists():
            litellm["skipped"] = (
                f"{args.litellm} does not exist: install it with `python -m venv /tmp/litellm-venv && "
                "/tmp/litellm-venv/bin/pip install 'litellm[proxy]'` (kept out of this project's venv)"
            )
        else:
            try:
                started = time.monotonic()
                proc = start_litellm(args.litellm, work, upstream_url, ll_port)
                procs.append(proc)
                litellm["startup_seconds"] = round(time.monotonic() - started, 1)
                version = subprocess.run(
                    [str(args.litellm.with_name("pip")), "show", "litellm"], capture_output=True, text=True, timeout=60
                ).stdout
                found = [ln.split(":", 1)[1].strip() for ln in version.splitlines() if ln.startswith("Version:")]
                litellm["version"] = found[0] if found else None
                headers = {"Authorization": f"Bearer {LITELLM_KEY}"}
                targets["litellm"] = (f"http://127.0.0.1:{ll_port}/v1/chat/completions", gw_body, headers)
            except Exception as exc:  # record why, measure the rest
                log_file = work / "litellm.log"
                tail = log_file.read_text(errors="replace")[-1500:] if log_file.exists() else ""
                litellm["skipped"] = f"LiteLLM's proxy did not start: {exc}; log tail: {tail}"
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for round_ in range(args.rounds):
            for name, (url, payload, headers) in targets.items():
                print(f"round {round_ + 1}/{args.rounds}: {name} …", flush=True)
                runs[name].append(asyncio.run(measure(url, payload, headers, args)))
    finally:
        for proc in reversed(procs):
            stop(proc)
    results = {name: summarize(r) for name, r in runs.items()}
    direct = results["direct"]["latency_ms"]
    for result in results.values():
        result["added_latency_ms"] = {q: round(result["latency_ms"][q] - direct[q], 3) for q in ("p50", "p99")}
    payload = {
        "benchmark": "gateway_overhead",
        "date": utc_now(),
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": load_average()},
        "workload": {
            "endpoint": "POST /v1/chat/completions (not streamed)",
            "body": {"messages": MESSAGES, "max_tokens": 8},
            "sequential_requests_per_round": args.requests,
            "concurrency": args.concurrency,
            "throughput_seconds_per_round": args.seconds,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "client": "aiohttp, in the benchmark process",
            "upstream": "minimal asyncio HTTP/1.1 server answering a canned completion at once (subprocess)",
        },
        "setup": {
            "llmops": "llmops serve (1 process), openai-upstream deployment, API key, rate limit 1e8 rpm / 1e9 tpm "
            "per key and user, per-token pricing, request log on (JSON line per request)",
            "litellm": "litellm --config (1 worker), master key, openai/ model with rpm 1e8 and per-token costs, "
            "default logging; no database (virtual keys, per-key limits and spend logs need Postgres + Prisma)",
        },
        "litellm": litellm,
        "results": results,
    }
    out = write_result("gateway_overhead", payload)
    for name, r in results.items():
        lat, added = r["latency_ms"], r["added_latency_ms"]
        print(
            f"{name:8s} p50 {lat['p50']:8.3f} ms (+{added['p50']:.3f})  p99 {lat['p99']:8.3f} ms (+{added['p99']:.3f})"
            f"  {r['requests_per_second']['median']:8.1f} req/s  errors {r['errors']}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
