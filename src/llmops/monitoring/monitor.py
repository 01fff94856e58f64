"""A deployment's traffic over a window: the numbers (latency, throughput, cost, quality) and its drift.

``MonitorService.summary`` aggregates the stored requests of a window (percentiles, a time series in
buckets, cost by user, the share of each quality signal); ``MonitorService.drift`` compares the texts of
the window with a reference — the window just before (``previous``), a longer span before it (``7d``), or a
dataset version (``dataset:NAME:VERSION``, e.g. what the model was tuned on) — with
:func:`llmops.monitoring.drift.compare_windows`. The HTML report and the UI monitoring page are built from
these two; every empty window says so instead of showing a number.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.service import DatasetService
from llmops.errors import InvalidInput
from llmops.monitoring.drift import DriftConfig, DriftReport, Window, compare_windows
from llmops.monitoring.schemas import SIGNALS, RequestQuery, parse_duration
from llmops.monitoring.store import RequestStore
from llmops.percentiles import percentile

MAX_WINDOW_TEXTS = 20_000  # texts read per side; the drift checks sample far fewer (DriftConfig.max_rows)
BUCKETS = 24


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        if not values:
            return cls(p50=None, p95=None, p99=None)
        return cls(p50=percentile(values, 50), p95=percentile(values, 95), p99=percentile(values, 99))


class Bucket(BaseModel):
    start: dt.datetime
    requests: int
    errors: int
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    output_tokens_per_second: float = Field(description="completion tokens finished in the bucket / its seconds")


class UserCost(BaseModel):
    user: str
    requests: int
    tokens: int
    cost: float
    currency: str


class Summary(BaseModel):
    deployment: str
    since: dt.datetime
    until: dt.datetime
    requests: int
    errors: int
    statuses: dict[str, int]
    latency: Percentiles
    ttft: Percentiles
    tpot: Percentiles
    prompt_tokens: int
    completion_tokens: int
    cost: dict[str, float] = Field(description="total cost by currency")
    cost_by_user: list[UserCost]
    signals: dict[str, float | None] = Field(description="share of requests with each quality signal")
    signal_counts: dict[str, int]
    versions: dict[str, int]
    buckets: list[Bucket]


class MonitorService:
    def __init__(self, store: RequestStore, datasets: DatasetService) -> None:
        self.store = store
        self.datasets = datasets

    # --- numbers --------------------------------------------------------------------------------------------
    def summary(self, deployment: str, *, window: str = "24h", now: dt.datetime | None = None) -> Summary:
        until = now or dt.datetime.now(dt.UTC)
        since = until - parse_duration(window)
        columns = [
            "started_at", "finished_at", "status", "latency", "ttft", "tpot", "prompt_tokens", "completion_tokens",
            "cost_micros", "currency", "user", "version", *SIGNALS,
        ]  # fmt: skip
        rows = self.store.series(RequestQuery(deployment=deployment, since=since, until=until), columns)
        col = {c: i for i, c in enumerate(columns)}
        n = len(rows)
        statuses = Counter(str(r[col["status"]]) for r in rows)
        costs: dict[str, float] = defaultdict(float)
        by_user: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        for r in rows:
            cost = r[col["cost_micros"]] / 1_000_000
            costs[r[col["currency"]]] += cost
            entry = by_user[(r[col["user"]] or "-", r[col["currency"]])]
            entry[0] += 1
            entry[1] += r[col["prompt_tokens"]] + r[col["completion_tokens"]]
            entry[2] += cost
        signal_counts: dict[str, int] = {}
        signal_rates: dict[str, float | None] = {}
        for s in SIGNALS:
            seen = [r[col[s]] for r in rows if r[col[s]] is not None]
            signal_counts[s] = sum(1 for v in seen if v)
            signal_rates[s] = signal_counts[s] / len(seen) if seen else None
        return Summary(
            deployment=deployment,
            since=since,
            until=until,
            requests=n,
            errors=sum(1 for r in rows if r[col["status"]] >= 400),
            statuses=dict(sorted(statuses.items())),
            latency=Percentiles.of([r[col["latency"]] for r in rows]),
            ttft=Percentiles.of([r[col["ttft"]] for r in rows if r[col["ttft"]] is not None]),
            tpot=Percentiles.of([r[col["tpot"]] for r in rows if r[col["tpot"]] is not None]),
            prompt_tokens=sum(r[col["prompt_tokens"]] for r in rows),
            completion_tokens=sum(r[col["completion_tokens"]] for r in rows),
            cost=dict(costs),
            cost_by_user=sorted(
                (
                    UserCost(user=u, currency=c, requests=int(v[0]), tokens=int(v[1]), cost=v[2])
                    for (u, c), v in by_user.items()
                ),
                key=lambda u: (-u.cost, -u.requests, u.user),
            ),
            signals=signal_rates,
            signal_counts=signal_counts,
            versions=dict(Counter(r[col["version"]] or "-" for r in rows)),
            buckets=_buckets(rows, col, since, until),
        )

    # --- drift ----------------------------------------------------------------------------------------------
    def window(self, deployment: str, since: dt.datetime, until: dt.datetime, label: str) -> Window:
        """The kept prompts and completions of a deployment's requests in ``[since, until)``."""
        query = RequestQuery(deployment=deployment, since=since, until=until)
        prompts: list[str] = []
        completions: list[str] = []
        for _, text in self.store.iter_texts(query, limit=MAX_WINDOW_TEXTS):
            if text.prompt is not None:
                prompts.append(text.prompt)
            if text.completion is not None:
                completions.append(text.completion)
        return Window(prompts=prompts, completions=completions, label=label)

    def dataset_window(self, ref: str) -> Window:
        """A dataset version as a reference: prompts and completions (chat: last user and assistant turns)."""
        version = self.datasets.get(ref)
        prompts: list[str] = []
        completions: list[str] = []
        kind = DatasetKind(version.kind)
        columns = {DatasetKind.text: ["text"], DatasetKind.prompt_completion: ["prompt", "completion"]}.get(
            kind, ["messages"]
        )
        for batch in self.datasets.iter_batches(version.ref, columns=columns):
            if kind is DatasetKind.text:
                prompts += [t or "" for t in batch.column("text").to_pylist()]
            elif kind is DatasetKind.prompt_completion:
                prompts += [t or "" for t in batch.column("prompt").to_pylist()]
                completions += [t or "" for t in batch.column("completion").to_pylist()]
            else:
                for messages in batch.column("messages").to_pylist():
                    users = [m["content"] or "" for m in messages or [] if m["role"] == "user"]
                    answers = [m["content"] or "" for m in messages or [] if m["role"] == "assistant"]
                    if users:
                        prompts.append(users[-1])
                    if answers:
                        completions.append(answers[-1])
            if len(prompts) >= MAX_WINDOW_TEXTS:
                break
        return Window(prompts=prompts[:MAX_WINDOW_TEXTS], completions=completions[:MAX_WINDOW_TEXTS], label=ref)

    def drift(
        self,
        deployment: str,
        *,
        window: str = "24h",
        reference: str = "previous",
        embeddings: bool = False,
        perplexity: bool = False,
        perplexity_model: Path | None = None,
        config: DriftConfig | None = None,
        now: dt.datetime | None = None,
    ) -> DriftReport:
        """The window's texts against ``reference`` (see the module docstring)."""
        until = now or dt.datetime.now(dt.UTC)
        length = parse_duration(window)
        since = until - length
        current = self.window(deployment, since, until, f"{deployment} last {window}")
        if reference.startswith("dataset:"):
            ref_window = self.dataset_window(reference.removeprefix("dataset:"))
        elif reference == "previous":
            ref_window = self.window(deployment, since - length, since, f"{deployment} the {window} before")
        else:
            try:
                span = parse_duration(reference, field="reference")
            except InvalidInput:
                raise InvalidInput(
                    f"reference {reference!r}: use 'previous' (the window before), a duration before the window "
                    "(7d) or dataset:NAME:VERSION"
                ) from None
            ref_window = self.window(deployment, since - span, since, f"{deployment} the {reference} before")
        embedder = None
        if embeddings:
            from llmops.monitoring.embedding import MiniLMEmbedder

            embedder = MiniLMEmbedder()
        scorer = None
        if perplexity:
            from llmops.monitoring.perplexity import CausalLMPerplexity

            scorer = CausalLMPerplexity(perplexity_model) if perplexity_model else CausalLMPerplexity()
        return compare_windows(ref_window, current, config=config, embedder=embedder, perplexity=scorer)

    def view(
        self,
        deployment: str,
        *,
        window: str = "24h",
        reference: str = "previous",
        embeddings: bool = False,
        perplexity: bool = False,
        now: dt.datetime | None = None,
    ) -> tuple[Summary, DriftReport]:
        """The summary and the drift of one window, measured at the same instant (what reports show)."""
        now = now or dt.datetime.now(dt.UTC)
        summary = self.summary(deployment, window=window, now=now)
        drift = self.drift(
            deployment, window=window, reference=reference, embeddings=embeddings, perplexity=perplexity, now=now
        )
        return summary, drift


def _buckets(rows: list[tuple[Any, ...]], col: dict[str, int], since: dt.datetime, until: dt.datetime) -> list[Bucket]:
    span = (until - since).total_seconds()
    width = span / BUCKETS
    groups: list[list[tuple[Any, ...]]] = [[] for _ in range(BUCKETS)]
    for r in rows:
        index = min(BUCKETS - 1, max(0, math.floor((r[col["started_at"]] - since).total_seconds() / width)))
        groups[index].append(r)
    out = []
    for i, group in enumerate(groups):
        latencies = [r[col["latency"]] for r in group]
        ttfts = [r[col["ttft"]] for r in group if r[col["ttft"]] is not None]
        out.append(
            Bucket(
                start=since + dt.timedelta(seconds=i * width),
                requests=len(group),
                errors=sum(1 for r in group if r[col["status"]] >= 400),
                latency_p50=percentile(latencies, 50) if latencies else None,
                latency_p95=percentile(latencies, 95) if latencies else None,
                ttft_p50=percentile(ttfts, 50) if ttfts else None,
                output_tokens_per_second=sum(r[col["completion_tokens"]] for r in group) / width,
            )
        )
    return out
