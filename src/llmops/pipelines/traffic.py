"""The demo's production traffic: questions from two users sent through the real gateway to a deployment,
with a planted shift in the second half, then feedback, a feedback dataset and the monitoring report.

The first half asks about a few everyday topics in English; the second half mixes in a new topic
(astronomy), Chinese and German questions and longer prompts — the kinds of shift the drift checks are meant
to catch. Requests go over HTTP to a gateway started in this process (the same app ``llmops serve`` runs),
so the records, costs and quality signals are the real ones. Some answers get feedback (thumbs, and
corrections for a few), which ``export_dataset`` turns into the first dataset version of the closed loop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from llmops.errors import AlreadyExists
from llmops.monitoring.report import render_report
from llmops.monitoring.schemas import RequestQuery
from llmops.platform import Platform
from llmops.security.actor import Actor

USERS = ("alice", "bob")
OPENERS = ("Can you explain", "Tell me about", "How do I", "What is the best way to", "Give me tips on")
TOPICS = {
    "cooking": [
        "bake",
        "bread",
        "at",
        "home",
        "with",
        "flour",
        "water",
        "yeast",
        "and",
        "salt",
        "in",
        "a",
        "simple",
        "oven",
    ],
    "travel": [
        "plan",
        "a",
        "train",
        "trip",
        "through",
        "the",
        "mountains",
        "with",
        "a",
        "small",
        "budget",
        "and",
        "good",
        "hotels",
    ],
    "python": [
        "write",
        "a",
        "python",
        "function",
        "that",
        "sorts",
        "a",
        "list",
        "of",
        "numbers",
        "and",
        "prints",
        "the",
        "result",
    ],
    "garden": [
        "grow",
        "tomatoes",
        "in",
        "a",
        "small",
        "garden",
        "with",
        "enough",
        "sun",
        "water",
        "and",
        "good",
        "soil",
    ],
}
NEW_TOPIC = [
    "telescope",
    "galaxies",
    "nebula",
    "orbit",
    "planets",
    "comet",
    "stars",
    "observatory",
    "eclipse",
    "spectrum",
]
CHINESE = ("请解释一下如何在家里做面包", "我想了解火车旅行的预算", "怎样在花园里种西红柿", "请帮我写一个排序的函数")
GERMAN = ("Kannst du mir erklären, wie man Brot backt", "Wie plane ich eine günstige Zugreise", "Was ist der beste Weg")


def question(rng: random.Random, *, shifted: bool) -> str:
    """One prompt: an opener and topic words; shifted prompts are other topics, languages and lengths."""
    if shifted:
        roll = rng.random()
        if roll < 0.25:
            return rng.choice(CHINESE) + "？"
        if roll < 0.4:
            return rng.choice(GERMAN) + "?"
        if roll < 0.7:
            return f"{rng.choice(OPENERS)} {' '.join(rng.sample(NEW_TOPIC, 6))}?"
        words = [w for _ in range(3) for w in rng.sample(TOPICS[rng.choice(list(TOPICS))], 8)]
        return f"{rng.choice(OPENERS)} {' '.join(words)} and explain every step in detail?"
    topic = TOPICS[rng.choice(list(TOPICS))]
    return f"{rng.choice(OPENERS)} {' '.join(rng.sample(topic, 5))}?"


@dataclass
class TrafficResult:
    requests: int
    statuses: dict[int, int]
    feedback: int
    dataset: str | None
    report: Path
    drifted: list[str]
    drift_status: str
    cost_by_user: dict[str, float] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _gateway(platform: Platform, timeout: float = 300.0) -> Iterator[str]:
    """The platform's app under uvicorn on 127.0.0.1 until the block ends (ready: every engine answered)."""
    import uvicorn

    from llmops.api.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(platform=platform), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="demo-gateway", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the demo gateway did not become ready within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        server.should_exit = True
        thread.join(60)


def send_demo_traffic(
    platform: Platform,
    actor: Actor,
    *,
    deployment: str = "reference",
    per_half: int = 120,
    max_tokens: int = 24,
    concurrency: int = 8,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> TrafficResult:
    """Send the traffic, attach feedback, export it as a dataset and write the report (module docstring)."""
    monitoring: dict[str, Any] = {"capture_text": True, "latency_objective_ms": 5000}
    pricing: dict[str, Any] = {"input_per_million": 0.5, "output_per_million": 1.5, "currency": "USD"}
    spec = platform.deployments.get(deployment).spec
    if not spec.monitoring.capture_text or spec.pricing.model_dump() != {**pricing, "hourly": None}:
        platform.deployments.set_policies(
            actor,
            deployment,
            reason="demo traffic: keep texts for drift and feedback",
            monitoring=monitoring,
            pricing=pricing,
        )
    keys: dict[str, str] = {}
    for user in USERS:
        with contextlib.suppress(AlreadyExists):
            platform.security.create_principal(actor, user, kind="user", role="viewer")
        keys[user] = platform.security.create_key(actor, principal=user, name="demo-traffic").key
    rng = random.Random(seed)
    plan = [(USERS[i % 2], question(rng, shifted=False)) for i in range(per_half)]
    plan += [(USERS[(i + 1) % 2], question(rng, shifted=True)) for i in range(per_half)]
    statuses: Counter[int] = Counter()
    served: list[tuple[str, str, int]] = []  # (user, request id, half)
    lock = threading.Lock()
    with _gateway(platform) as url, httpx.Client(base_url=url, timeout=120) as client:

        def call(item: tuple[int, tuple[str, str]]) -> None:
            index, (user, prompt) = item
            r = client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {keys[user]}"},
                json={
                    "model": deployment,
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": max_tokens,
                    "temperature": 0.8,
                    "seed": seed + index,
                },
            )
            with lock:
                statuses[r.status_code] += 1
                if r.is_success:
                    served.append((user, r.headers["x-request-id"], index // per_half))
                if progress:
                    progress("demo traffic", sum(statuses.values()), len(plan))

        start = time.time()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(call, list(enumerate(plan))[:per_half]))
        middle = time.time()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(call, list(enumerate(plan))[per_half:]))
        end = time.time()
        # every record is stored a moment after its response; wait for all of them
        query = RequestQuery(deployment=deployment, since=dt.datetime.fromtimestamp(start - 1, dt.UTC))
        deadline = time.monotonic() + 60
        while platform.requests.count(query) < sum(statuses.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        feedback = _feedback(client, keys, served, rng)
    until = dt.datetime.fromtimestamp(end + 1, dt.UTC)
    window = f"{end + 1 - middle:.3f}s"
    dataset = None
    with contextlib.suppress(Exception):  # no feedback with text: nothing to export
        dataset = platform.feedback.export_dataset(
            actor, f"{deployment}-feedback", RequestQuery(deployment=deployment), kind="chat"
        ).ref
    summary = platform.monitor.summary(deployment, window=f"{end + 1 - start:.3f}s", now=until)
    drift = platform.monitor.drift(deployment, window=window, reference=f"{middle - start + 0.5:.3f}s", now=until)
    reports = platform.settings.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    report = reports / f"{deployment}-monitoring.html"
    report.write_text(render_report(summary, drift), encoding="utf-8")
    return TrafficResult(
        requests=sum(statuses.values()),
        statuses=dict(statuses),
        feedback=feedback,
        dataset=dataset,
        report=report,
        drifted=drift.drifted,
        drift_status=drift.status,
        cost_by_user={u.user: u.cost for u in summary.cost_by_user},
    )


def _feedback(
    client: httpx.Client, keys: dict[str, str], served: list[tuple[str, str, int]], rng: random.Random
) -> int:
    """Thumbs on about a fifth of the answers; a thumbs-down carries a corrected answer."""
    sent = 0
    for user, request_id, _ in served:
        if rng.random() > 0.2:
            continue
        up = rng.random() < 0.6
        body: dict[str, str] = {"request_id": request_id, "thumbs": "up" if up else "down"}
        if not up:
            body["correction"] = "Here is a short, correct answer, step by step."
        for _ in range(20):  # the record may still be on its way to the database
            r = client.post("/api/v1/feedback", json=body, headers={"Authorization": f"Bearer {keys[user]}"})
            if r.status_code != 404:
                break
            time.sleep(0.1)
        sent += 1 if r.status_code == 201 else 0
    return sent
