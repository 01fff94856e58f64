"""Serving throughput over HTTP: continuous batching vs one-at-a-time, and llmops vs ``transformers serve``.

What is measured, and why
-------------------------
``engine_batching.py`` measures the engine in-process; users meet it through the gateway, over HTTP, with
streaming. The issue's two goals are measured here end to end with the load generator
(``llmops.serving.loadgen``: TTFT, TPOT, ITL and E2EL as ``vllm bench serve`` defines them), on the
reference model (``assets/reference-lm``, 5.2M-parameter Llama, fp32, CPU), in one run:

(a) ``llmops serve`` with continuous batching at 16 concurrent requests against one-at-a-time serving, goal
    >= 4x output tokens per second. One-at-a-time is the client's ``max_concurrency = 1`` against the same
    deployment (``cb``: ``max_batch_size`` 16); a third row sends the 16-concurrent load to a deployment whose
    engine has ``max_batch_size`` 1 (``batch1``: requests queue in the engine), the server-side variant.
    These requests set ``ignore_eos``, so every request generates exactly ``--max-tokens`` tokens.
(b) the same 16-concurrent load against ``transformers serve --continuous-batching`` (its default ``--cb-*``
    settings, ``--device cpu``) on the same model directory, goal: llmops more output tokens per second and
    a lower median TTFT. ``transformers serve`` refuses ``ignore_eos`` (422 "Unexpected fields"), so this
    pair uses identical bodies without it, greedy (``temperature`` 0) on both servers: the same model gives
    the same tokens, and output tokens are counted from each server's own usage chunk anyway.

Workload: ``--num-prompts`` synthetic prompts (8..24 common English words, seed ``--seed``) sent at once
(``--request-rate inf``, or Poisson at a rate) under a concurrency cap, ``POST /v1/completions`` streamed with
``stream_options.include_usage``; ``--warmup`` unmeasured requests before each measured run. Both servers run
as child processes for the whole benchmark; each round runs every configuration in turn (interleaved), so the
machine's other load hits them alike; per configuration the median over rounds is reported, every round kept.
The CPU seconds each server process used during each run are recorded too (``/proc/<pid>/stat``), which also
shows whether the idle server took any CPU while the other was measured.

Run:  ``.venv/bin/python benchmarks/serving_throughput.py [--num-prompts 48] [--max-tokens 64]
[--concurrency 16] [--rounds 2] [--no-transformers]``
Writes ``benchmarks/results/serving_throughput.json``. Default run: about five minutes on 2 vCPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, machine_info, utc_now, write_result  # noqa: E402
from _servers import cpu_seconds, free_port, stop, wait_http  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "assets" / "reference-lm"


def start_llmops(home: Path, port: int, concurrency: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    from llmops.platform import Platform
    from llmops.security.actor import local_admin
    from llmops.settings import Settings

    platform = Platform(Settings(home=home))
    admin = local_admin()
    platform.registry.import_model(admin, MODEL_DIR, name="reference-lm")
    platform.deployments.deploy(
        admin, "cb", model="reference-lm:1", engine_options={"max_batch_size": concurrency, "max_waiting": 1024}
    )
    platform.deployments.deploy(
        admin, "batch1", model="reference-lm:1", engine_options={"max_batch_size": 1, "max_waiting": 1024}
    )
    platform.security.create_principal(admin, "bench")
    key = platform.security.create_key(admin, principal="bench").key
    platform.close()
    env = {**os.environ, "LLMOPS_HOME": str(home), "LLMOPS_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    log = home / "serve.log"
    cli = Path(sys.executable).with_name("llmops")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(cli), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/readyz", 300, proc, log=log)
    return proc, key, log


def start_transformers(work: Path, port: int) -> tuple[subprocess.Popen[bytes], Path, list[str]]:
    binary = shutil.which("transformers", path=str(Path(sys.executable).parent))
    if binary is None:
        raise RuntimeError(f"no `transformers` command next to {sys.executable}")
    argv = [binary, "serve", "--continuous-batching", "--device", "cpu", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning", str(MODEL_DIR)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    log = work / "transformers-serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/health", 300, proc, log=log)
    return proc, log, argv


# --- load -------------------------------------------------------------------------------------------------------
@dataclass
class Config:
    name: str
    server: str  # "llmops" or "transformers"
    url: str
    model: str
    api_key: str | None
    ignore_eos: bool
    max_concurrency: int
    description: str


async def measure(config: Config, prompts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from llmops.serving.loadgen import LoadGenerator, Sampling, Target, synthetic_prompts

    target = Target(config.url, config.model, "completions", api_key=config.api_key)
    sampling = Sampling(max_tokens=args.max_tokens, ignore_eos=config.ignore_eos, temperature=0.0)
    generator = LoadGenerator(target, sampling, timeout=900)
    if args.warmup:
        warm = synthetic_prompts(args.warmup, seed=args.seed + 1)  # not the measured prompts: no cache helps
        await generator.warmup(warm, concurrency=min(args.warmup, config.max_concurrency))
    done = await generator.run(
        prompts, request_rate=args.request_rate, seed=args.seed, max_concurrency=config.max_concurrency
    )
    return done.summary().to_json()


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ["output_throughput", "request_throughput", "median_ttft_ms", "p99_ttft_ms", "mean_ttft_ms"]
    keys += ["median_tpot_ms", "p99_tpot_ms", "median_itl_ms", "p99_itl_ms", "median_e2el_ms", "p99_e2el_ms"]
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in rounds), 2) for k in keys}
    out["output_throughput_rounds"] = [round(r["output_throughput"], 1) for r in rounds]
    out["median_ttft_ms_rounds"] = [round(r["median_ttft_ms"], 1) for r in rounds]
    out["completed"] = sum(r["completed"] for r in rounds)
    out["failed"] = sum(r["failed"] for r in rounds)
    out["total_output_tokens"] = sum(r["total_output_tokens"] for r in rounds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-prompts", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--request-rate", type=float, default=math.inf, help="requests/s (Poisson) or inf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--no-transformers", action="store_true")
    args = parser.parse_args()

    from llmops.serving.loadgen import synthetic_prompts

    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="serving-throughput-"))
    prompts = synthetic_prompts(args.num_prompts, seed=args.seed)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    transformers_info: dict[str, Any] = {}
    configs: list[Config] = []
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        port = free_port()
        started = time.monotonic()
        proc, key, _ = start_llmops(work / "llmops", port, args.concurrency)
        procs["llmops"] = proc
        ours = f"http://127.0.0.1:{port}"
        print(f"llmops serve ready in {time.monotonic() - started:.1f} s", flush=True)
        c = args.concurrency
        configs += [
            Config("llmops_cb", "llmops", ours, "cb", key, True, c, f"llmops, {c} concurrent, continuous batching"),
            Config("llmops_serial", "llmops", ours, "cb", key, True, 1, "llmops, one request at a time (client)"),
            Config("llmops_batch1", "llmops", ours, "batch1", key, True, c, f"llmops, {c} concurrent, engine batch 1"),
            Config("llmops_cb_greedy", "llmops", ours, "cb", key, False, c, f"llmops, {c} concurrent, no ignore_eos"),
        ]
        if args.no_transformers:
            transformers_info["skipped"] = "--no-transformers"
        else:
            try:
                import transformers

                transformers_info["version"] = transformers.__version__
                tport = free_port()
                started = time.monotonic()
                tproc, _, argv = start_transformers(work, tport)
                procs["transformers"] = tproc
                transformers_info["startup_seconds"] = round(time.monotonic() - started, 1)
                transformers_info["argv"] = argv[1:]
                description = f"transformers serve --continuous-batching, {c} concurrent, no ignore_eos"
                configs.append(
                    Config(
                        "transformers_cb_greedy",
                        "transformers",
                        f"http://127.0.0.1:{tport}",
                        str(MODEL_DIR),
                        None,
                        False,
                        c,
                        description,
                    )
                )
                print(f"transformers serve ready in {transformers_info['startup_seconds']} s", flush=True)
            except Exception as exc:  # record why, measure the rest
                transformers_info["skipped"] = f"transformers serve did not start: {exc}"
                print(transformers_info["skipped"], flush=True)
        runs = {cfg.name: [] for cfg in configs}
        for round_ in range(args.rounds):
            for cfg in configs:
                print(f"round {round_ + 1}/{args.rounds}: {cfg.name} …", flush=True)
                cpu_before = {name: cpu_seconds(p.pid, reaped_children=True) for name, p in procs.items()}
                result = asyncio.run(measure(cfg, prompts, args))
                result["server_cpu_seconds"] = {
                    name: round(cpu_seconds(p.pid, reaped_children=True) - cpu_before[name], 2)
                    for name, p in procs.items()
                }
                runs[cfg.name].append(result)
                print(
                    f"  {result['output_throughput']:.1f} tok/s, median TTFT {result['median_ttft_ms']:.1f} ms, "
                    f"completed {result['completed']}, failed {result['failed']} {result['errors'][:1]}",
                    flush=True,
                )
    finally:
        for proc in procs.values():
            stop(proc)
    results = {name: aggregate(r) for name, r in runs.items() if r}
    for cfg in configs:
        if cfg.name in results:
            results[cfg.name]["description"] = cfg.description
            results[cfg.name]["max_concurrency"] = cfg.max_concurrency
            results[cfg.name]["ignore_eos"] = cfg.ignore_eos

    def ratio(a: str, b: str, key: str = "output_throughput") -> float | None:
        if a in results and b in results and results[b][key]:
            return round(float(results[a][key]) / float(results[b][key]), 2)
        return None

    ratios = {
        "cb_over_serial_output_throughput": ratio("llmops_cb", "llmops_serial"),
        "cb_over_batch1_output_throughput": ratio("llmops_cb", "llmops_batch1"),
        "llmops_over_transformers_output_throughput": ratio("llmops_cb_greedy", "transformers_cb_greedy"),
        "transformers_over_llmops_median_ttft": ratio("transformers_cb_greedy", "llmops_cb_greedy", "median_ttft_ms"),
    }
    payload = {
        "benchmark": "serving_throughput",
        "date": utc_now(),
        "machine": machine_info(),
        "load_average": {"before": load_before, "after": load_average()},
        "workload": {
            "model": "assets/reference-lm (5.2M-parameter Llama, fp32, CPU)",
            "endpoint": "POST /v1/completions, streamed, stream_options.include_usage",
            "num_prompts": args.num_prompts,
            "prompts": "synthetic: 8..24 common English words each (llmops.serving.loadgen.synthetic_prompts)",
            "seed": args.seed,
            "max_tokens": args.max_tokens,
            "temperature": 0.0,
            "request_rate": "inf" if math.isinf(args.request_rate) else args.request_rate,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "warmup_requests_per_run": args.warmup,
            "client": "llmops.serving.loadgen (httpx, in the benchmark process; a new connection per request, "
            "no keep-alive, as vLLM's client)",
            "one_at_a_time": "llmops_serial: client max_concurrency 1 against the max_batch_size 16 deployment; "
            "llmops_batch1: 16 concurrent against an engine with max_batch_size 1",
        },
        "transformers": transformers_info,
        "results": results,
        "ratios": ratios,
        "rounds": runs,
    }
    out = write_result("serving_throughput", payload)
    for name, r in results.items():
        print(
            f"{name:24s} {r['output_throughput']:8.1f} tok/s  TTFT median {r['median_ttft_ms']:8.1f} ms "
            f"p99 {r['p99_ttft_ms']:8.1f} ms  TPOT median {r['median_tpot_ms']:6.1f} ms  failed {r['failed']}"
        )
    print(f"ratios: {ratios}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
