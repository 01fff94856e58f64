"""The request store behind a real gateway: records land in the database with their texts and costs, the
request id header leads to feedback, costs come out over REST and the CLI, budgets read the rollups, and a
database outage under load loses records (counted) but never a response."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from llmops.cli.main import app as cli
from llmops.counters.memory import MemoryCounters
from llmops.errors import QuotaExceeded
from llmops.monitoring.schemas import RequestQuery
from llmops.monitoring.writer import DatabaseWriter
from llmops.platform import Platform
from llmops.serving.deployments.schemas import Budget
from llmops.serving.limits import BudgetGuard
from tests.conftest import PG_ADMIN_URL
from tests.monitoring.proxy import Forwarder
from tests.monitoring.records import record
from tests.serving.conftest import llama_dir  # noqa: F401 - the session fixture, shared with the serving tests
from tests.serving.test_gateway_policies import Server, manager_for, new_platform, start, wait_for


def stored(server: Server, deployment: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        r = httpx.get(
            f"{server.url}/api/v1/requests",
            params={"deployment": deployment, "limit": 100},
            headers=server.headers("admin"),
            timeout=10,
        )
        r.raise_for_status()
        found[:] = r.json()["items"]
        return len(found) >= count

    wait_for(enough, timeout)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Iterator[Server]:  # noqa: F811
    platform, admin, keys = new_platform(tmp_path_factory.mktemp("monitoring"), llama_dir)
    platform.security.create_principal(admin, "ops", role="developer")
    keys["admin"] = platform.security.create_key(admin, principal="ops").key
    platform.deployments.deploy(
        admin,
        "watched",
        model="lm:1",
        pricing={"input_per_million": 2.0, "output_per_million": 6.0},
        monitoring={"capture_text": True, "latency_objective_ms": 60_000},
    )
    srv = start(platform, manager_for(platform), keys, admin)
    yield srv
    srv.stop()
    platform.close()


def test_requests_are_stored_with_texts_cost_and_the_id_clients_see(server: Server) -> None:
    client = server.client()
    raw = client.chat.completions.with_raw_response.create(
        model="watched",
        messages=[{"role": "user", "content": "my mail is jane@example.com, say hi"}],
        max_tokens=6,
        temperature=0,
    )
    answer = raw.parse().choices[0].message.content
    request_id = raw.headers["x-request-id"]
    stream = client.chat.completions.create(
        model="watched",
        messages=[{"role": "user", "content": "stream please"}],
        max_tokens=5,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        user="end-user-7",
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    rows = {r["request_id"]: r for r in stored(server, "watched", 2)}
    row = rows[request_id]
    assert row["user"] == "alice" and row["version"] == "lm:1" and row["status"] == 200
    assert row["cost"] == pytest.approx(float(raw.headers["x-llmops-cost"]), abs=1e-9)

    detail = httpx.get(
        f"{server.url}/api/v1/requests/{request_id}", headers=server.headers("admin"), timeout=10
    ).json()[0]
    assert detail["prompt"] == "my mail is <EMAIL>, say hi"  # redacted before storage
    assert detail["completion"] == answer
    assert detail["redactions"] == {"EMAIL": 1}
    assert detail["signals"]["slow"] is False and detail["signals"]["empty"] is (answer == "")
    [stream_row] = [r for r in rows.values() if r["request_user"] == "end-user-7"]
    assert stream_row["stream"] is True and stream_row["completion_tokens"] >= 1
    stream_detail = httpx.get(
        f"{server.url}/api/v1/requests/{stream_row['request_id']}", headers=server.headers("admin"), timeout=10
    ).json()[0]
    assert stream_detail["completion"] == streamed

    # a viewer key may call the model and give feedback, but not read other people's requests
    denied = httpx.get(f"{server.url}/api/v1/requests", headers=server.headers("alice"), timeout=10)
    assert denied.status_code == 403

    feedback = httpx.post(
        f"{server.url}/api/v1/feedback",
        json={"request_id": request_id, "thumbs": "down", "correction": "Hi!"},
        headers=server.headers("alice"),
        timeout=10,
    )
    assert feedback.status_code == 201 and feedback.json()["score"] == 0.0
    unknown = httpx.post(
        f"{server.url}/api/v1/feedback",
        json={"request_id": "no-such-request", "thumbs": "up"},
        headers=server.headers("alice"),
        timeout=10,
    )
    assert unknown.status_code == 404 and "x-request-id" in unknown.json()["error"]["message"]
    out_of_range = httpx.post(
        f"{server.url}/api/v1/feedback",
        json={"request_id": request_id, "score": 9, "score_min": 1, "score_max": 5},
        headers=server.headers("alice"),
        timeout=10,
    )
    assert out_of_range.status_code == 422 and "outside [1.0, 5.0]" in out_of_range.text


def test_costs_over_rest_csv_and_cli(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    client = server.client("bob")
    raw = client.completions.with_raw_response.create(model="watched", prompt="cost me", max_tokens=3)
    stored(server, "watched", 1)
    wait_for(
        lambda: any(r.group["user"] == "bob" for r in server.platform.requests.costs(["user"], deployment="watched"))
    )
    rows = httpx.get(
        f"{server.url}/api/v1/costs",
        params={"by": ["user", "version"], "since": "1d", "deployment": "watched"},
        headers=server.headers("admin"),
        timeout=10,
    ).json()
    bob = [r for r in rows if r["group"]["user"] == "bob"]
    assert bob and bob[0]["group"]["version"] == "lm:1"
    assert bob[0]["cost"] == pytest.approx(float(raw.headers["x-llmops-cost"]), abs=1e-9)
    csv_text = httpx.get(
        f"{server.url}/api/v1/costs",
        params={"by": "user", "format": "csv"},
        headers=server.headers("admin"),
        timeout=10,
    ).text
    assert csv_text.splitlines()[0] == "user,currency,requests,errors,prompt_tokens,completion_tokens,cost"
    assert any(line.startswith("bob,USD,1,0,") for line in csv_text.splitlines())

    monkeypatch.setenv("LLMOPS_HOME", str(server.platform.settings.home))
    result = CliRunner().invoke(cli, ["costs", "--by", "user", "--since", "1d", "--csv", "-"])
    assert result.exit_code == 0, result.output
    assert any(line.startswith("bob,USD,1,0,") for line in result.output.splitlines())
    listed = CliRunner().invoke(cli, ["requests", "list", "--user", "bob", "--json"])
    assert listed.exit_code == 0, listed.output
    assert raw.headers["x-request-id"] in listed.output
    bad = CliRunner().invoke(cli, ["costs", "--since", "yesterday"])
    assert bad.exit_code == 1 and "neither a duration" in bad.output


def test_a_restarted_gateway_seeds_budgets_from_the_rollups(platform: Platform) -> None:
    DatabaseWriter(platform.requests).write_now([record(deployment="capped", cost=0.004, key_prefix="k9")])
    budget = Budget(amount=0.003, period="day", per="key")
    fresh = BudgetGuard(MemoryCounters(), ledger=platform.requests.spent)  # a new process: empty counters
    with pytest.raises(QuotaExceeded, match="budget"):
        fresh.check("capped", {"key": "k9", "user": "alice"}, budget)
    fresh.check("capped", {"key": "other", "user": "alice"}, budget)  # another key has spent nothing
    without_ledger = BudgetGuard(MemoryCounters())
    without_ledger.check("capped", {"key": "k9", "user": "alice"}, budget)


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_database_outage_under_load_loses_records_not_responses(
    tmp_path: Path,
    pg_url: str,
    llama_dir: Path,  # noqa: F811
) -> None:
    proxy = Forwarder("127.0.0.1", 5432)
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != pg_url and PG_ADMIN_URL in pg_url
    platform, admin, keys = new_platform(tmp_path, llama_dir, database_url=url)
    platform.deployments.deploy(admin, "busy", model="lm:1")
    server = start(platform, manager_for(platform), keys, admin)
    statuses: list[int] = []
    stop = threading.Event()

    def load(who: str) -> None:
        while not stop.is_set():
            r = server.post("/v1/completions", {"model": "busy", "prompt": "hello", "max_tokens": 2}, who=who)
            statuses.append(r.status_code)

    try:
        for who in ("alice", "bob"):  # both keys are verified (and cached) before the outage
            assert server.post("/v1/completions", {"model": "busy", "prompt": "x", "max_tokens": 1}, who=who).is_success
        wait_for(lambda: platform.requests.count(RequestQuery(deployment="busy")) == 2)
        workers = [threading.Thread(target=load, args=(w,)) for w in ("alice", "bob", "alice")]
        for w in workers:
            w.start()
        time.sleep(1.0)
        proxy.cut()
        cut_at = len(statuses)
        time.sleep(10.0)
        during = statuses[cut_at:]
        proxy.restore()
        time.sleep(1.0)
        stop.set()
        for w in workers:
            w.join(30)
        assert len(during) > 10, "the load generator made too few requests to test anything"
        assert set(statuses) == {200}, f"statuses seen: {sorted(set(statuses))}"
        lost = metric(server.url, "llmops_records_failed_total", writer="DatabaseWriter")
        assert lost > 0  # records of the outage were dropped and counted
        # writing resumed by itself: a request after the outage is stored
        after = server.post("/v1/completions", {"model": "busy", "prompt": "after", "max_tokens": 1}, who="bob")
        rid = after.headers["x-request-id"]
        wait_for(
            lambda: any(
                r.request_id == rid for r in platform.requests.list_requests(RequestQuery(deployment="busy", limit=5))
            ),
            timeout=30,
        )
        # batches are written in order, so every record before that one is either stored or counted as lost
        stored_count = platform.requests.count(RequestQuery(deployment="busy"))
        lost = metric(server.url, "llmops_records_failed_total", writer="DatabaseWriter")
        assert stored_count + lost == len(statuses) + 3
    finally:
        stop.set()
        server.stop()
        platform.close()
        proxy.close()
