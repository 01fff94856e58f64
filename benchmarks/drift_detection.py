"""Drift detection: detection rate and false alarms per method on planted shifts, and the cost of a report.

What is measured, and why
-------------------------
The issue's benchmarks: "Drift report over 100,000 stored requests on this machine: time without embeddings
(goal ≤ 30 s) and with embeddings. Detection table on the planted-shift suite: detection rate and false alarms
per method."

**Detection table.** A seeded generator (below; its word lists and word drawing are the test suite's,
``tests/monitoring/planted.py``) writes windows of prompts and completions: an opener and words drawn from a
small English vocabulary with Zipf weights mixed with words of three topics (cooking, travel, software);
completions are a few sentences of the same mix, 3 % refusals. Shifts change one thing in the current window:
``new_vocabulary`` (a fifth of each prompt's words invented), ``new_topic`` (half the prompts about medicine,
in ordinary English words), ``new_language`` (30 % of prompts German or Chinese), ``longer_prompts`` (twice
the words); ``no_shift`` is another seed of the reference generator, so every alarm in that column is a false
alarm. For each of ``--seeds`` seeds: a reference of ``--rows`` requests and one current window per shift
(other seed), compared with the default :class:`DriftConfig` (small-sample regime: KS, chi-square and
permutation tests at alpha = 0.05), perplexity under the reference model on at most 100 prompts per window,
and embedding drift (MiniLM) on ``--embedding-rows`` prompts per window. A method "detects" when its check
alarms on the prompts (the planted shifts are in the prompts); "PSI" counts a descriptor whose PSI is at
least 0.25 (any descriptor, so its false-alarm rate is per report, not per descriptor).

**Report time.** ``--requests`` (100,000) requests with realistic lengths (prompts of about 60 words,
completions about 150, log-normal), half reference and half current (a planted topic shift), through
:func:`compare_windows` with the default configuration: without embeddings or perplexity; with perplexity;
with perplexity and embeddings. Descriptors, classifier, perplexity and embeddings all work on bounded
samples (``DriftConfig``), so the time is set by those bounds and by building the windows, not by the number
of stored requests; the time to load models is reported separately.

Run:  ``.venv/bin/python benchmarks/drift_detection.py [--seeds 5] [--rows 300] [--requests 100000]``
Writes ``benchmarks/results/drift_detection.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.monitoring.planted

from _common import RESULTS_DIR, load_average, machine_info, summarize, utc_now, write_result  # noqa: E402
from tests.monitoring.planted import (  # noqa: E402
    COMMON,
    COMMON_P,
    GERMAN,
    HAN,
    NEW_TOPIC,
    NEW_WORDS,
    OPENERS,
    REFUSALS,
    SHIFTS,
    TOPICS,
    sentence,
)

from llmops.monitoring.drift import (  # noqa: E402
    CategoricalDrift,
    DriftConfig,
    NumericDrift,
    Window,
    compare_windows,
    embedding_drift,
)
from llmops.monitoring.embedding import MiniLMEmbedder  # noqa: E402
from llmops.monitoring.perplexity import CausalLMPerplexity  # noqa: E402
from llmops.monitoring.quality import assess  # noqa: E402

GOAL_SECONDS = 30.0


TOPIC_WORDS = list(TOPICS.values())  # cooking, travel, software


def make_window(shift: str, n: int, seed: int, *, prompt_words: float = 18, answer_sentences: int = 4) -> Window:
    """``n`` requests; ``shift`` one of :data:`SHIFTS` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    answers: list[str] = []
    for _ in range(n):
        topic = TOPIC_WORDS[int(rng.integers(len(TOPIC_WORDS)))]
        if shift == "new_topic" and rng.random() < 0.5:
            topic = NEW_TOPIC
        length = int(np.clip(rng.lognormal(np.log(prompt_words), 0.45), 4, 40 * prompt_words))
        if shift == "longer_prompts":
            length *= 2
        roll = rng.random()
        if shift == "new_language" and roll < 0.15:
            prompt = " ".join(rng.choice(GERMAN, size=length).tolist()).capitalize() + "?"
        elif shift == "new_language" and roll < 0.30:
            prompt = "".join(rng.choice(list(HAN), size=length * 2).tolist()) + "？"
        else:
            tokens = sentence(rng, length, topic)
            if shift == "new_vocabulary":
                for i in np.flatnonzero(rng.random(length) < 0.2):
                    tokens[i] = NEW_WORDS[int(rng.integers(len(NEW_WORDS)))]
            prompt = f"{OPENERS[int(rng.integers(len(OPENERS)))]} {' '.join(tokens)}?"
        prompts.append(prompt)
        if rng.random() < 0.03:
            answers.append(REFUSALS[int(rng.integers(2))])
        else:
            k = max(1, int(rng.poisson(answer_sentences)))
            answers.append(
                " ".join(" ".join(sentence(rng, int(rng.integers(6, 16)), topic)).capitalize() + "." for _ in range(k))
            )
    return Window(prompts=tuple(prompts), completions=tuple(answers), label=f"{shift}:{seed}")


def _texts(rng: np.random.Generator, lengths: np.ndarray, topics: np.ndarray, sentence_words: int) -> list[str]:
    """Texts of the given word counts, each in its row's topic (an index into ``TOPIC_TABLE``), drawn in one
    vectorised pass; a period ends a sentence about every ``sentence_words`` words."""
    total = int(lengths.sum())
    row_topic = np.repeat(topics, lengths)
    common = np.array(COMMON, dtype=object)[rng.choice(len(COMMON), size=total, p=COMMON_P)]
    topical = TOPIC_TABLE[row_topic, rng.integers(TOPIC_TABLE.shape[1], size=total)]
    flat = np.where(rng.random(total) < 0.3, topical, common)
    ends = rng.random(total) < 1.0 / sentence_words
    flat = np.where(ends, flat + ".", flat).tolist()
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    return [" ".join(flat[a:b]).capitalize() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


TOPIC_TABLE = np.array([t[:22] for t in [*TOPIC_WORDS, NEW_TOPIC]], dtype=object)
"""The three baseline topics and the new one (row 3), 22 words each, for vectorised drawing."""


def make_requests(n: int, seed: int, *, new_topic_share: float = 0.0) -> Window:
    """``n`` requests of realistic length for the timing (prompts ~60 words, completions ~150), drawn in bulk:
    the per-row generator of the detection table would take longer than the report itself."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(len(TOPIC_WORDS), size=n)
    topics = np.where(rng.random(n) < new_topic_share, len(TOPIC_WORDS), topics)
    prompt_lengths = np.clip(rng.lognormal(np.log(55), 0.5, size=n), 4, 1000).astype(np.int64)
    answer_lengths = np.clip(rng.lognormal(np.log(135), 0.5, size=n), 1, 2000).astype(np.int64)
    openers = rng.choice(OPENERS, size=n).tolist()
    prompts = [f"{o} {t}?" for o, t in zip(openers, _texts(rng, prompt_lengths, topics, 40), strict=True)]
    answers = _texts(rng, answer_lengths, topics, 11)
    for i in np.flatnonzero(rng.random(n) < 0.03).tolist():
        answers[i] = REFUSALS[i % 2]
    return Window(prompts=tuple(prompts), completions=tuple(answers), label=f"requests:{seed}")


class CachingEmbedder:
    """Embeds each distinct text once (reference windows are reused across shifts)."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])


def detection_table(seeds: int, rows: int, embedding_rows: int) -> dict[str, Any]:
    config = DriftConfig(perplexity_max_texts=100)
    perplexity = CausalLMPerplexity()
    embedder = CachingEmbedder(MiniLMEmbedder())
    hits: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    started = time.perf_counter()
    for seed in range(seeds):
        reference = make_window("no_shift", rows, seed=1000 + seed)
        for shift in SHIFTS:
            current = make_window(shift, rows, seed=2000 + seed)
            cfg = config.model_copy(update={"seed": seed})
            report = compare_windows(reference, current, config=cfg, perplexity=perplexity)
            p = report.prompts
            checks: list[NumericDrift | CategoricalDrift] = [*p.numeric, *p.categorical]
            for check in checks:
                hits[f"{check.name} ({check.method})"][shift] += check.drift
            hits["PSI ≥ 0.25 (any descriptor)"][shift] += any(c.psi_level == "major" for c in checks)
            hits[f"domain classifier ({p.classifier.method})"][shift] += p.classifier.drift
            hits["any check, prompts or completions"][shift] += report.drift
            emb = embedding_drift(reference.prompts[:embedding_rows], current.prompts[:embedding_rows], embedder, cfg)
            hits["embedding MMD² (permutation)"][shift] += emb.mmd_drift
            hits[f"embedding classifier ({emb.classifier.method})"][shift] += emb.classifier.drift
        print(f"  seed {seed + 1}/{seeds} done ({time.perf_counter() - started:.0f} s)", flush=True)
    table = {method: {shift: round(by[shift] / seeds, 3) for shift in SHIFTS} for method, by in hits.items()}
    return {"seeds": seeds, "rows_per_window": rows, "embedding_rows_per_window": embedding_rows, "rates": table}


def report_time(requests: int, *, with_models: bool = True) -> dict[str, Any]:
    half = requests // 2
    start = time.perf_counter()
    reference = make_requests(half, seed=1)
    current = make_requests(requests - half, seed=2, new_topic_share=0.5)
    build = time.perf_counter() - start
    words = [len(t.split()) for t in reference.prompts[:5000]], [len(t.split()) for t in reference.completions[:5000]]
    out: dict[str, Any] = {
        "requests": requests,
        "build_windows_seconds": round(build, 2),
        "mean_prompt_words": round(float(np.mean(words[0])), 1),
        "mean_completion_words": round(float(np.mean(words[1])), 1),
        "goal_seconds": GOAL_SECONDS,
    }
    compare_windows(Window(prompts=reference.prompts[:50]), Window(prompts=current.prompts[:50]))  # warm imports

    def timed(name: str, **kw: Any) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        report = compare_windows(reference, current, **kw)
        seconds = time.perf_counter() - start
        out[name] = {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),  # all threads of this process
            "load_after": load_average(),
            "parts": {"prompts": report.prompts.seconds, "completions": report.completions.seconds},
            "drifted": report.drifted,
        }
        print(f"  {name}: {seconds:.1f} s (cpu {out[name]['cpu_seconds']:.1f} s)", flush=True)

    timed("without_embeddings")
    if not with_models:
        return out
    start = time.perf_counter()
    perplexity = CausalLMPerplexity()
    perplexity.score(["warm up"])
    out["perplexity_load_seconds"] = round(time.perf_counter() - start, 2)
    timed("with_perplexity", perplexity=perplexity)
    start = time.perf_counter()
    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])
    out["embedder_load_seconds"] = round(time.perf_counter() - start, 2)
    timed("with_perplexity_and_embeddings", perplexity=perplexity, embedder=embedder)
    return out


def stored_report_time(requests: int, *, batch: int = 1000) -> dict[str, Any]:
    """The report as users run it: ``requests`` stored through the request store's writer (SQLite, the embedded
    default; texts kept, PII redacted, quality signals) over two days, then ``MonitorService.view`` (window
    summary + drift of the second day against the first), timed."""
    import datetime as dt
    import tempfile

    from tests.monitoring.records import record

    from llmops.monitoring.writer import DatabaseWriter
    from llmops.platform import Platform
    from llmops.serving.deployments.schemas import Monitoring
    from llmops.serving.records import CapturedText
    from llmops.settings import Settings

    half = requests // 2
    windows = (make_requests(half, seed=1), make_requests(requests - half, seed=2, new_topic_share=0.5))
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    policy = Monitoring(capture_text=True)
    out: dict[str, Any] = {"requests": requests, "goal_seconds": GOAL_SECONDS, "backend": "sqlite"}
    with tempfile.TemporaryDirectory(prefix="llmops-drift-bench-") as home:
        platform = Platform(Settings(home=Path(home)))
        writer = DatabaseWriter(platform.requests)
        start = time.perf_counter()
        for day, window in enumerate(windows):
            t0 = now.timestamp() - (2 - day) * 86400
            step = 86400 / len(window.prompts)
            pairs = list(zip(window.prompts, window.completions, strict=True))
            for first in range(0, len(pairs), batch):
                records = [
                    record(
                        request_id=f"b{day}-{first + i}",
                        deployment="bench",
                        version="bench:1",
                        key_prefix="k",
                        user=f"user{i % 7}",
                        prompt_tokens=len(p) // 4,
                        completion_tokens=len(c) // 4,
                        time_to_first_token=0.1,
                        time_per_output_token=0.02,
                        latency=1.0,
                        cost=1e-5,
                        started_at=t0 + (first + i) * step,
                        finished_at=t0 + (first + i) * step + 1.0,
                        text=CapturedText(prompt=p, messages=[{"role": "user", "content": p}], completion=c),
                        policy=policy,
                    )
                    for i, (p, c) in enumerate(pairs[first : first + batch])
                ]
                writer.write_now(records)
        out["store_seconds"] = round(time.perf_counter() - start, 2)
        print(f"  stored {requests:,} requests in {out['store_seconds']:.0f} s", flush=True)
        compare_windows(Window(prompts=windows[0].prompts[:50]), Window(prompts=windows[1].prompts[:50]))  # imports
        start, cpu = time.perf_counter(), time.process_time()
        summary, report = platform.monitor.view("bench", window="1d", reference="previous", now=now)
        out["without_embeddings"] = {
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "load_after": load_average(),
            "summary_requests": summary.requests,
            "reference_rows": report.prompts.reference_rows,
            "current_rows": report.prompts.current_rows,
            "drifted": report.drifted,
        }
        print(f"  stored report: {out['without_embeddings']['seconds']:.1f} s", flush=True)
        platform.close()
    return out


def quality_rate(n: int = 20_000) -> dict[str, Any]:
    """Assessments per second on short answers (one to three sentences; 3 % refusals)."""
    window = make_window("no_shift", n, seed=3, answer_sentences=2)
    pairs = list(zip(window.prompts, window.completions, strict=True))
    assess(*pairs[0])
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        for prompt, completion in pairs:
            assess(prompt, completion, finish_reason="stop", latency=0.5, latency_objective=2.0)
        seconds.append(time.perf_counter() - start)
    mean_chars = float(np.mean([len(c) for _, c in pairs]))
    return {"assessments": n, "mean_completion_chars": round(mean_chars, 1), **summarize(seconds, n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--embedding-rows", type=int, default=150)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--stored", action="store_true", help="also time the report over requests in the request store")
    parser.add_argument(
        "--timing-without-models", action="store_true", help="time only the report without perplexity and embeddings"
    )
    parser.add_argument("--name", default="drift_detection", help="results file name (without .json)")
    args = parser.parse_args()
    previous = RESULTS_DIR / f"{args.name}.json"  # parts skipped in this run keep their last result
    payload: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    payload.update({"benchmark": "drift_detection", "date": utc_now(), "machine": machine_info()})
    payload["load_before"] = load_average()
    if not args.skip_quality:
        payload["quality"] = quality_rate()
        print(f"quality signals: {payload['quality']['median_rate']:,.0f} assessments/s")
    if not args.skip_timing:
        print(f"drift report over {args.requests:,} requests")
        if args.timing_without_models:  # keep the model timings of the last full run
            payload.setdefault("timing", {}).update(report_time(args.requests, with_models=False))
        else:
            payload["timing"] = report_time(args.requests)
    if args.stored:
        print(f"drift report over {args.requests:,} stored requests")
        payload["stored_timing"] = stored_report_time(args.requests)
    if not args.skip_table:
        print(f"detection table: {args.seeds} seeds x {len(SHIFTS)} shifts, {args.rows} rows per window")
        payload["detection"] = detection_table(args.seeds, args.rows, args.embedding_rows)
    payload["load_after"] = load_average()
    path = write_result(args.name, payload)
    if "detection" in payload:
        rates = payload["detection"]["rates"]
        print(f"\n{'method':44s}" + "".join(f"{s:>16s}" for s in SHIFTS))
        for method, by in rates.items():
            print(f"{method:44s}" + "".join(f"{by[s]:16.2f}" for s in SHIFTS))
    if "timing" in payload:
        t = payload["timing"]
        for name in ("without_embeddings", "with_perplexity", "with_perplexity_and_embeddings"):
            if name in t:
                print(f"{name:34s} {t[name]['seconds']:8.1f} s")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
