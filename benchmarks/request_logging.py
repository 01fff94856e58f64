"""Request logging: gateway throughput with every request logged and stored, against logging off, same run.

What is measured, and why
-------------------------
Every request the gateway serves becomes a record that a background sink hands to writers off the request
path (``llmops.serving.records``): a JSON line on the ``llmops.requests`` logger and a row in the metadata
database, with — for a deployment that keeps texts — PII redaction of the prompt and completion and the
text-based quality signals (``llmops.monitoring.writer``). That work runs in the gateway's writer process
(``llmops.monitoring.writer_process``, ``LLMOPS_REQUEST_WRITER=process``, the default), a child of
``llmops serve`` that the gateway hands pickled batches to, so it no longer competes with serving for the
gateway's GIL — only for the machine's cores; the claim to hold is that full logging costs at most 5 % of
throughput (ratio ≥ 0.95).

The upstream answers at once: the stand-in OpenAI server of the tests (``tests/serving/standin_server.py``,
a subprocess on 127.0.0.1), so the gateway's own cost dominates, not a model. Two gateways, each
``llmops serve`` in its own child process with its own ``LLMOPS_HOME`` (SQLite, the embedded default) and
its own API key, the same ``openai-upstream`` deployment on the stand-in (per-key rate limit far above the
run, per-token pricing), ``LLMOPS_LOG_LEVEL=info`` and the child's output in a file:

``off``   ``LLMOPS_REQUEST_STORE=false``, ``LLMOPS_REQUEST_LOG=false``;
``full``  ``LLMOPS_REQUEST_STORE=true``, ``LLMOPS_REQUEST_LOG=true`` (a JSON line per request into the log
          file), and the deployment with ``monitoring.capture_text`` on (texts kept, PII redacted, quality
          signals computed for every request).

Load: ``--concurrency`` aiohttp clients in this process send non-streamed ``POST /v1/chat/completions``
(a short user message) back to back for ``--seconds`` per round, after a warm-up of each gateway; rounds
alternate off, full, off, full, … so that other load on the machine hits both alike. Reported per
configuration: the median of the rounds' requests/s, p50/p99 latency over all measured requests; the ratio
full/off of the medians; and for ``full`` that nothing was lost: rows in its ``requests`` table (sqlite3,
after the last flush) against the requests sent, ``llmops_records_dropped_total`` and
``llmops_records_failed_total`` from its ``/metrics``.

Each round also reads the CPU time (``/proc/<pid>/stat``, user + system, all threads) of the gateway and,
separately, of its child processes (the writer process; one that starts during the round counts from zero)
from the round's start until 1.5 s after its end (the sink has flushed the round's records by then): CPU
milliseconds per request is far less sensitive to other load on the machine than requests/s. The gateway's
CPU per request bounds its throughput (one event loop); gateway + writer is what full logging costs the
machine. At the end the writers' work is timed in this process on 500-record batches of records like
``full``'s (``DatabaseWriter.prepare``, the SQLite insert, ``LogWriter``), to set against the CPU per request.

Run:  ``.venv/bin/python benchmarks/request_logging.py [--concurrency 16] [--seconds 8] [--rounds 10]
[--configs off,full]`` (``--configs off,log,store,store-text,full`` splits the cost between the writers;
``--configs off,full,full-thread`` sets the writer process against the writers in the gateway's own process,
``LLMOPS_REQUEST_WRITER=thread``, in the same run).
Writes ``benchmarks/results/request_logging.json`` (``--output`` elsewhere). Default run: about four minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, machine_info, utc_now, write_result  # noqa: E402
from _servers import DEPLOYMENT, UPSTREAM_MODEL, cpu_seconds, free_port, stop, upstream_gateway, wait_http  # noqa: E402

from llmops.percentiles import percentile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "serving" / "standin_server.py"
FLUSH_WAIT = 1.5
"""Seconds after a round before the gateway's CPU time is read: the sink flushes at least every second."""
MESSAGES = [{"role": "user", "content": "Hello, how are you today? Please answer in one short sentence."}]
CONFIGS: dict[str, dict[str, Any]] = {
    "off": {"env": {"LLMOPS_REQUEST_STORE": "false", "LLMOPS_REQUEST_LOG": "false"}, "capture_text": False},
    "full": {"env": {"LLMOPS_REQUEST_STORE": "true", "LLMOPS_REQUEST_LOG": "true"}, "capture_text": True},
    # Diagnostics (``--configs``): one writer at a time, to see where the cost of ``full`` goes.
    "log": {"env": {"LLMOPS_REQUEST_STORE": "false", "LLMOPS_REQUEST_LOG": "true"}, "capture_text": False},
    "store": {"env": {"LLMOPS_REQUEST_STORE": "true", "LLMOPS_REQUEST_LOG": "false"}, "capture_text": False},
    "store-text": {"env": {"LLMOPS_REQUEST_STORE": "true", "LLMOPS_REQUEST_LOG": "false"}, "capture_text": True},
    # ``full`` with the writers in the gateway's own process (a worker thread and the event loop), as before the
    # writer process: the same-run comparison of the two.
    "full-thread": {
        "env": {"LLMOPS_REQUEST_STORE": "true", "LLMOPS_REQUEST_LOG": "true", "LLMOPS_REQUEST_WRITER": "thread"},
        "capture_text": True,
    },
}


# --- processes ----------------------------------------------------------------------------------------------
def start_upstream(port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(STANDIN), "serve", "m", "--served-model-name", UPSTREAM_MODEL]
    env = {**os.environ, "STANDIN_LOAD_SECONDS": "0"}
    out = open(log, "wb")  # noqa: SIM115 - the child process writes to it
    proc = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    wait_http(f"http://127.0.0.1:{port}/v1/models", 30, proc)
    return proc


# --- load ---------------------------------------------------------------------------------------------------
async def drive(url: str, key: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` clients back to back for ``seconds``: completed requests, latencies, non-200 statuses."""
    import aiohttp

    payload = json.dumps({"model": DEPLOYMENT, "messages": MESSAGES, "max_tokens": 8}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    failures = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    async with session.post(url, data=payload, headers=headers) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError:
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ok = statuses.get("200", 0)
    return {
        "sent": len(latencies) + failures,
        "ok": ok,
        "seconds": elapsed,
        "requests_per_second": ok / elapsed,
        "latencies": latencies,
        "statuses": statuses,
        "transport_failures": failures,
    }


def cpu_of_tree(pid: int) -> dict[int, float]:
    """CPU seconds so far of ``pid`` and of each of its children (the gateway's writer process)."""
    out = {pid: cpu_seconds(pid)}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[1]) == pid:
            out[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def writer_cost(batches: int = 8, size: int = 500) -> dict[str, Any]:
    """Microseconds per record of the writers' work in this process, on records shaped like the run's
    (``full``: text kept, redacted, assessed): ``DatabaseWriter.prepare`` (signals, redaction), the store's
    insert (``RequestStore.write``, SQLite) and ``LogWriter`` (a JSON line into a file). Medians of batches."""
    import datetime as dt
    import logging
    import uuid

    from llmops.monitoring.writer import DatabaseWriter
    from llmops.platform import Platform
    from llmops.serving.deployments.schemas import Monitoring
    from llmops.serving.records import CapturedText, LogWriter, RequestRecord
    from llmops.settings import Settings

    policy = Monitoring(capture_text=True)
    prompt = str(MESSAGES[0]["content"])

    def record() -> RequestRecord:
        now = time.time()
        return RequestRecord(
            request_id=f"req-{uuid.uuid4().hex}", deployment=DEPLOYMENT, endpoint="chat", route="primary",
            version=None, revision=1, mode="primary", key_prefix="b34df9d7", user="bench", request_user=None,
            stream=False, status=200, error=None, finish_reason="stop", prompt_tokens=11, completion_tokens=4,
            queue_time=None, time_to_first_token=None, time_per_output_token=None, latency=0.03, cost=1.15e-5,
            currency="USD", cache_hit=False, started_at=now - 0.03, finished_at=now, policy=policy,
            text=CapturedText(prompt=prompt, messages=[dict(MESSAGES[0])], completion=" from the stand-in"),
        )  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="request-logging-writer-") as tmp:
        platform = Platform(Settings(home=Path(tmp) / "home"))
        writer = DatabaseWriter(platform.requests)
        logger = logging.getLogger(f"request-logging-bench-{dt.datetime.now().timestamp()}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = logging.FileHandler(Path(tmp) / "requests.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        log_writer = LogWriter(logger)
        times: dict[str, list[float]] = {"prepare": [], "store": [], "log": []}
        try:
            for i in range(batches + 1):
                batch = [record() for _ in range(size)]
                t0 = time.perf_counter()
                prepared = [writer.prepare(r) for r in batch]
                t1 = time.perf_counter()
                platform.requests.write(prepared)
                t2 = time.perf_counter()
                asyncio.run(log_writer.write(batch))
                t3 = time.perf_counter()
                if i:  # the first batch warms caches and compiles statements
                    for name, seconds in (("prepare", t1 - t0), ("store", t2 - t1), ("log", t3 - t2)):
                        times[name].append(seconds / size * 1e6)
        finally:
            logger.removeHandler(handler)
            handler.close()
            platform.close()
    out: dict[str, Any] = {name: round(statistics.median(v), 1) for name, v in times.items()}
    out["total"] = round(sum(out.values()), 1)
    out["batches"], out["batch_size"] = batches, size
    return out


def scrape(port: int) -> dict[str, float]:
    """The record sink's counters from ``/metrics`` (dropped, failed summed over writers, pending)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out = {"llmops_records_dropped_total": 0.0, "llmops_records_failed_total": 0.0, "llmops_records_pending": 0.0}
    for line in text.splitlines():
        match = re.match(r"^(llmops_records_(?:dropped_total|failed_total|pending))(\{[^}]*\})?\s+(\S+)$", line)
        if match:
            out[match.group(1)] += float(match.group(3))
    return out


def count_rows(db: Path) -> dict[str, int]:
    """Stored requests, kept texts, and the requests the cost rollups counted (sqlite3, read only)."""
    queries = {
        "requests": "SELECT count(*) FROM requests",
        "request_texts": "SELECT count(*) FROM request_texts",
        "cost_rollup_requests": "SELECT coalesce(sum(requests), 0) FROM cost_rollups",
    }
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {name: int(conn.execute(query).fetchone()[0]) for name, query in queries.items()}
    finally:
        conn.close()


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for r in runs for x in r["latencies"]]
    rates = [r["requests_per_second"] for r in runs]
    cpu = [r["cpu_ms_per_request"] for r in runs]
    writer_cpu = [r["writer_cpu_ms_per_request"] for r in runs]
    total_cpu = [a + b for a, b in zip(cpu, writer_cpu, strict=True)]
    statuses: dict[str, int] = {}
    for r in runs:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    return {
        "requests_per_second": {"median": round(statistics.median(rates), 1), "rounds": [round(x, 1) for x in rates]},
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 2),
            "p99": round(percentile(latencies, 99) * 1000, 2),
            "mean": round(statistics.fmean(latencies) * 1000, 2),
            "samples": len(latencies),
        },
        "cpu_ms_per_request": {
            "median": round(statistics.median(cpu), 3),
            "rounds": [round(x, 3) for x in cpu],
        },
        "writer_process_cpu_ms_per_request": {
            "median": round(statistics.median(writer_cpu), 3),
            "rounds": [round(x, 3) for x in writer_cpu],
        },
        "total_cpu_ms_per_request": {"median": round(statistics.median(total_cpu), 3)},
        "statuses": statuses,
        "transport_failures": sum(r["transport_failures"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per configuration (alternating)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load on each gateway before round 1")
    parser.add_argument(
        "--configs", default="off,full", help=f"comma-separated, first is the baseline ({', '.join(CONFIGS)})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (homes, logs, databases)")
    parser.add_argument("--output", type=Path, help="write the JSON here instead of benchmarks/results/")
    args = parser.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or len(names) < 2:
        parser.error(f"--configs: two or more of {', '.join(CONFIGS)}")
    base = names[0]

    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="request-logging-"))
    procs: list[subprocess.Popen[bytes]] = []
    gateways: dict[str, tuple[int, str, Path]] = {}
    pids: dict[str, int] = {}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    sent: dict[str, int] = dict.fromkeys(names, 0)
    checks: dict[str, dict[str, Any]] = {}
    try:
        up_port = free_port()
        procs.append(start_upstream(up_port, work / "upstream.log"))
        upstream = f"http://127.0.0.1:{up_port}/v1"
        for name in names:
            home, port = work / name, free_port()
            config = CONFIGS[name]
            proc, key = upstream_gateway(
                home, port, upstream=upstream, env=config["env"], monitoring={"capture_text": config["capture_text"]}
            )
            procs.append(proc)
            gateways[name] = (port, key, home)
            pids[name] = proc.pid
        for name, (port, key, _) in gateways.items():
            print(f"warm-up {name} ({args.warmup:g} s) …", flush=True)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            warm = asyncio.run(drive(url, key, args.concurrency, args.warmup))
            sent[name] += warm["sent"]
            if warm["statuses"].keys() != {"200"}:
                raise RuntimeError(f"warm-up of {name}: statuses {warm['statuses']}; see {work / name / 'serve.log'}")
        for round_ in range(args.rounds):
            for name, (port, key, _) in gateways.items():
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                cpu = cpu_of_tree(pids[name])
                run = asyncio.run(drive(url, key, args.concurrency, args.seconds))
                time.sleep(FLUSH_WAIT)  # the records of the round are written: their cost counts in the round
                after = cpu_of_tree(pids[name])
                run["cpu_seconds"] = after[pids[name]] - cpu[pids[name]]
                run["writer_cpu_seconds"] = sum(v - cpu.get(p, 0.0) for p, v in after.items() if p != pids[name])
                run["cpu_ms_per_request"] = run["cpu_seconds"] * 1000 / max(run["sent"], 1)
                run["writer_cpu_ms_per_request"] = run["writer_cpu_seconds"] * 1000 / max(run["sent"], 1)
                sent[name] += run["sent"]
                runs[name].append(run)
                print(
                    f"round {round_ + 1}/{args.rounds} {name:10s}: {run['requests_per_second']:7.1f} req/s "
                    f"p50 {percentile(run['latencies'], 50) * 1000:7.2f} ms  "
                    f"cpu {run['cpu_ms_per_request']:5.2f} + writer {run['writer_cpu_ms_per_request']:4.2f} ms/req  "
                    f"statuses {run['statuses']}",
                    flush=True,
                )
        time.sleep(3.0)  # the sink flushes at least every second
        for name, (port, _, _) in gateways.items():
            checks[name] = {"requests_sent": sent[name], "metrics": scrape(port)}
    finally:
        for proc in reversed(procs):
            stop(proc, 40)  # SIGTERM: the gateway drains and its sink writes what is left
    for name, (_, _, home) in gateways.items():
        stores = CONFIGS[name]["env"]["LLMOPS_REQUEST_STORE"] == "true"
        logs = CONFIGS[name]["env"]["LLMOPS_REQUEST_LOG"] == "true"
        rows = count_rows(home / "llmops.db")
        lines = (home / "serve.log").read_text(errors="replace").splitlines()
        checks[name]["rows_after_stop"] = rows
        checks[name]["request_log_lines"] = sum(1 for line in lines if " llmops.requests: " in line)
        checks[name]["all_stored"] = rows["requests"] == sent[name] if stores else None
        checks[name]["all_logged"] = checks[name]["request_log_lines"] == sent[name] if logs else None
    results = {name: summarize(r) for name, r in runs.items()}
    print("the writers' cost per record, in this process …", flush=True)
    writers = writer_cost()
    base_rate = results[base]["requests_per_second"]["median"]
    ratios = {
        name: {
            "of_medians": round(results[name]["requests_per_second"]["median"] / base_rate, 3),
            "per_round": [
                round(r["requests_per_second"] / b["requests_per_second"], 3)
                for b, r in zip(runs[base], runs[name], strict=True)
            ],
            "median_per_round": round(
                statistics.median(
                    r["requests_per_second"] / b["requests_per_second"]
                    for b, r in zip(runs[base], runs[name], strict=True)
                ),
                3,
            ),
            # The gateway is one process, CPU-bound here: the CPU it spends per request bounds its throughput,
            # and that measure is much less sensitive to other load on the machine than requests/s.
            "of_cpu_per_request": round(
                results[base]["cpu_ms_per_request"]["median"] / results[name]["cpu_ms_per_request"]["median"], 3
            ),
            # What logging costs the machine: the gateway's and its writer process's CPU together.
            "of_total_cpu_per_request": round(
                results[base]["total_cpu_ms_per_request"]["median"]
                / results[name]["total_cpu_ms_per_request"]["median"],
                3,
            ),
        }
        for name in names[1:]
    }
    payload = {
        "benchmark": "request_logging",
        "date": utc_now(),
        "machine": machine_info(work),
        "load_average": {"before": load_before, "after": load_average()},
        "workload": {
            "endpoint": "POST /v1/chat/completions (not streamed)",
            "body": {"messages": MESSAGES, "max_tokens": 8},
            "concurrency": args.concurrency,
            "seconds_per_round": args.seconds,
            "rounds_per_config": args.rounds,
            "warmup_seconds_per_config": args.warmup,
            "order": f"{', '.join(names)}, repeated",
            "client": "aiohttp, in the benchmark process",
            "upstream": "tests/serving/standin_server.py (ThreadingHTTPServer subprocess, answers at once)",
        },
        "setup": {
            "all": "llmops serve (1 process, plus its writer process when a writer is on), own LLMOPS_HOME "
            "(SQLite), own API key, LLMOPS_LOG_LEVEL=info with the output in a file, openai-upstream deployment, "
            "rate limit 1e8 rpm / 1e9 tpm, per-token pricing",
            "request_writer": os.environ.get("LLMOPS_REQUEST_WRITER", "process (the default)")
            + " unless the configuration sets LLMOPS_REQUEST_WRITER",
            **{
                name: " ".join(f"{k}={v}" for k, v in CONFIGS[name]["env"].items())
                + f", monitoring.capture_text={str(CONFIGS[name]['capture_text']).lower()}"
                for name in names
            },
        },
        "results": results,
        "baseline": base,
        "ratios": ratios,
        "goal": "full / off >= 0.95",
        "checks": checks,
        "writer_us_per_record": writers,
    }
    if args.output is not None:
        args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        out = args.output
    else:
        out = write_result("request_logging", payload)
    print(
        f"\n{'config':10s} {'req/s median':>12s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU ms/req':>10s} {'writer':>7s}"
        f" {'ratio req/s':>11s} {'median pair':>11s} {'ratio CPU':>9s} {'ratio total CPU':>15s}"
    )
    for name, r in results.items():
        rps, lat, cpu = r["requests_per_second"], r["latency_ms"], r["cpu_ms_per_request"]
        writer_cpu = r["writer_process_cpu_ms_per_request"]["median"]
        q = ratios.get(name)
        tail = (
            f" {q['of_medians']:11.3f} {q['median_per_round']:11.3f} {q['of_cpu_per_request']:9.3f}"
            f" {q['of_total_cpu_per_request']:15.3f}"
            if q
            else ""
        )
        print(
            f"{name:10s} {rps['median']:12.1f} {lat['p50']:8.2f} {lat['p99']:8.2f} {cpu['median']:10.3f}"
            f" {writer_cpu:7.3f}{tail}"
        )
    for name, r in results.items():
        print(f"{name} req/s per round: {r['requests_per_second']['rounds']}")
    for name, ratio_ in ratios.items():
        print(f"{name}/{base} per round: {ratio_['per_round']}")
    for name, c in checks.items():
        m = c["metrics"]
        print(
            f"{name}: sent {c['requests_sent']}, rows {c['rows_after_stop']['requests']} "
            f"(texts {c['rows_after_stop']['request_texts']}), log lines {c['request_log_lines']}, "
            f"dropped {m['llmops_records_dropped_total']:g}, failed {m['llmops_records_failed_total']:g}"
        )
    print(
        f"writers, µs per record (in this process, 500-record batches): prepare {writers['prepare']}, store "
        f"{writers['store']}, log {writers['log']}, total {writers['total']}; "
        f"{base} CPU per request {results[base]['cpu_ms_per_request']['median']} ms"
    )
    print(f"wrote {out}" + (f"; work directory {work}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
