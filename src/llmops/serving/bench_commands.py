"""``llmops bench serve``: load an OpenAI-compatible server and print vLLM-style serving metrics.

A thin command over :mod:`llmops.serving.loadgen`, so numbers from the command line, the benchmark scripts
and the tests are computed by the same code and mean what ``vllm bench serve`` means by them. It talks to
any server over HTTP (ours, vLLM, ``transformers serve``) and needs no platform home.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any, cast

import typer
from rich.table import Table

from llmops.cli.context import console
from llmops.errors import InvalidInput
from llmops.serving.loadgen import (
    Endpoint,
    LoadGenerator,
    Sampling,
    Summary,
    Target,
    parse_rate,
    synthetic_prompts,
)

app = typer.Typer(help="Benchmarks against running servers.", no_args_is_help=True)


def _table(summary: Summary, config: dict[str, Any]) -> Table:
    table = Table(title="Serving benchmark result", show_header=False, title_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")

    def section(name: str) -> None:
        table.add_row(f"[bold]{name}[/]", "")

    table.add_row("Successful requests", str(summary.completed))
    table.add_row("Failed requests", str(summary.failed))
    table.add_row("Statuses (2xx / 429 / 5xx / other)", " / ".join(str(v) for v in summary.status_counts.values()))
    if config["max_concurrency"] is not None:
        table.add_row("Maximum request concurrency", str(config["max_concurrency"]))
    table.add_row("Request rate configured (RPS)", str(config["request_rate"]))
    table.add_row("Benchmark duration (s)", f"{summary.duration:.2f}")
    table.add_row("Total input tokens", str(summary.total_input_tokens))
    table.add_row("Total generated tokens", str(summary.total_output_tokens))
    table.add_row("Request throughput (req/s)", f"{summary.request_throughput:.2f}")
    table.add_row("Output token throughput (tok/s)", f"{summary.output_throughput:.2f}")
    table.add_row("Total token throughput (tok/s)", f"{summary.total_token_throughput:.2f}")
    headers = {
        "ttft": ("Time to first token", "TTFT"),
        "tpot": ("Time per output token (excl. 1st token)", "TPOT"),
        "itl": ("Inter-token latency", "ITL"),
        "e2el": ("End-to-end latency", "E2EL"),
    }
    for key, (title, short) in headers.items():
        stats = getattr(summary, key)
        section(title)
        table.add_row(f"Mean {short} (ms)", f"{stats.mean:.2f}")
        table.add_row(f"Median {short} (ms)", f"{stats.median:.2f}")
        for p, value in stats.percentiles.items():
            table.add_row(f"P{int(p) if int(p) == p else p} {short} (ms)", f"{value:.2f}")
    return table


@app.command("serve")
def serve_command(
    base_url: str = typer.Option(..., "--base-url", help="Server root, e.g. http://127.0.0.1:8080 (/v1 optional)."),
    model: str = typer.Option(..., "--model", help="The model (deployment) name requests ask for."),
    endpoint: str = typer.Option("completions", "--endpoint", help="completions or chat."),
    num_prompts: int = typer.Option(100, "--num-prompts", help="Requests to send (synthetic prompts)."),
    request_rate: str = typer.Option("inf", "--request-rate", help="Requests per second (Poisson), or inf."),
    burstiness: float = typer.Option(1.0, "--burstiness", help="Gamma shape of the arrivals; 1 is Poisson."),
    max_concurrency: int | None = typer.Option(None, "--max-concurrency", help="Most requests in flight."),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Output tokens per request."),
    ignore_eos: bool = typer.Option(
        True, "--ignore-eos/--no-ignore-eos", help="Ask for exactly max-tokens tokens (ignore_eos in the body)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the prompts and the arrival times."),
    warmup: int = typer.Option(1, "--warmup", help="Unmeasured requests sent first, one at a time."),
    api_key: str | None = typer.Option(None, "--api-key", help="Sent as `Authorization: Bearer <key>`."),
    result_file: Path | None = typer.Option(None, "--result-file", help="Write the metrics as JSON here."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds one request may take."),
) -> None:
    """Send streaming requests and report TTFT, TPOT, ITL, E2EL and throughput as `vllm bench serve` does."""
    if endpoint not in ("completions", "chat"):
        raise InvalidInput(f"--endpoint must be completions or chat, not {endpoint!r}")
    if num_prompts < 1:
        raise InvalidInput(f"--num-prompts must be at least 1, not {num_prompts}")
    if max_concurrency is not None and max_concurrency < 1:
        raise InvalidInput(f"--max-concurrency must be at least 1, not {max_concurrency}")
    if warmup < 0:
        raise InvalidInput(f"--warmup must not be negative, not {warmup}")
    rate = parse_rate(request_rate)
    target = Target(base_url, model, cast(Endpoint, endpoint), api_key=api_key)
    generator = LoadGenerator(target, Sampling(max_tokens=max_tokens, ignore_eos=ignore_eos), timeout=timeout)
    prompts = synthetic_prompts(num_prompts, seed=seed)

    async def go() -> Summary:
        if warmup:
            await generator.warmup(prompts[:1] * warmup)
        run = await generator.run(
            prompts, request_rate=rate, burstiness=burstiness, seed=seed, max_concurrency=max_concurrency
        )
        return run.summary()

    summary = asyncio.run(go())
    config: dict[str, Any] = {
        "base_url": base_url,
        "endpoint": target.url,
        "model": model,
        "num_prompts": num_prompts,
        "request_rate": "inf" if math.isinf(rate) else rate,
        "burstiness": burstiness,
        "max_concurrency": max_concurrency,
        "max_tokens": max_tokens,
        "ignore_eos": ignore_eos,
        "seed": seed,
    }
    console.print(_table(summary, config))
    if result_file is not None:
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.write_text(json.dumps({**config, **summary.to_json()}, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {result_file}")
    if summary.completed == 0:
        raise typer.Exit(1)
