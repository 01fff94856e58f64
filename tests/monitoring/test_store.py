"""The request store on both stacks: batched writes, kept texts with redaction and retention, cost rollups,
feedback and its export as a dataset version."""

from __future__ import annotations

import datetime as dt
import json
import time

import pyarrow.parquet as pq
import pytest

from llmops.errors import InvalidInput, NotFound
from llmops.monitoring.schemas import FeedbackIn, RequestQuery
from llmops.monitoring.writer import DatabaseWriter
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.serving.deployments.schemas import Monitoring
from tests.monitoring.records import record

DAY = 86400.0


def test_batches_are_stored_with_rollups_by_day_user_key_and_version(platform: Platform) -> None:
    writer = DatabaseWriter(platform.requests)
    t0 = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp()
    batch = [
        record(started_at=t0, cost=0.001, user="alice", key_prefix="k1"),
        record(started_at=t0 + 60, cost=0.002, user="alice", key_prefix="k1", prompt_tokens=5, completion_tokens=7),
        record(started_at=t0 + 120, cost=0.004, user="bob", key_prefix="k2", version="lm:2", route="canary"),
        record(started_at=t0 + DAY, cost=0.008, user="alice", key_prefix="k1"),
        record(started_at=t0 + 5, cost=0.5, user="alice", mode="shadow", route="shadow", version="lm:3"),
        record(started_at=t0 + 6, cost=0.0, user="bob", key_prefix="k2", status=429, error="rate_limit_exceeded"),
    ]
    assert writer.write_now(batch) == 6
    assert platform.requests.count(RequestQuery()) == 5  # shadow copies are listed only on request
    assert platform.requests.count(RequestQuery(include_shadow=True)) == 6

    by_user = {r.group["user"]: r for r in platform.requests.costs(["user"])}
    # shadow copies are never charged: alice pays 0.001 + 0.002 + 0.008
    assert by_user["alice"].cost == pytest.approx(0.011)
    assert by_user["alice"].requests == 3
    assert by_user["alice"].prompt_tokens == 10 + 5 + 10
    assert by_user["bob"].cost == pytest.approx(0.004)
    assert by_user["bob"].errors == 1 and by_user["bob"].requests == 2

    by_day = {r.group["day"]: r.cost for r in platform.requests.costs(["day"])}
    assert by_day == {"2026-11-20": pytest.approx(0.007), "2026-11-21": pytest.approx(0.008)}
    by_version = {r.group["version"]: r.cost for r in platform.requests.costs(["version"])}
    assert by_version == {"lm:1": pytest.approx(0.011), "lm:2": pytest.approx(0.004)}
    since = platform.requests.costs(["key"], since=dt.datetime(2026, 11, 21, tzinfo=dt.UTC))
    assert [(r.group["key"], r.cost) for r in since] == [("k1", pytest.approx(0.008))]

    # a second batch adds to the same rollup rows
    writer.write_now([record(started_at=t0 + 300, cost=0.016, user="bob", key_prefix="k2", version="lm:2")])
    assert {r.group["user"]: r.cost for r in platform.requests.costs(["user"])}["bob"] == pytest.approx(0.020)
    assert platform.requests.spent("lm", "user", "bob", "2026-11-20", "USD") == pytest.approx(0.020)
    assert platform.requests.spent("lm", "deployment", None, "2026-11-21", "USD") == pytest.approx(0.008)


def test_listing_filters_and_pages(platform: Platform) -> None:
    writer = DatabaseWriter(platform.requests)
    now = time.time()
    writer.write_now(
        [
            record(started_at=now - 3600 * i, user="alice" if i % 2 else "bob", status=500 if i == 3 else 200)
            for i in range(10)
        ]
    )
    assert len(platform.requests.list_requests(RequestQuery(user="bob"))) == 5
    assert [r.status for r in platform.requests.list_requests(RequestQuery(errors_only=True))] == [500]
    recent = platform.requests.list_requests(RequestQuery(since=dt.datetime.fromtimestamp(now - 3600 * 2.5, dt.UTC)))
    assert len(recent) == 3
    first = platform.requests.list_requests(RequestQuery(limit=4))
    second = platform.requests.list_requests(RequestQuery(limit=4, before=first[-1].row))
    assert len(first) == 4 and len(second) == 4
    assert not {r.request_id for r in first} & {r.request_id for r in second}


def test_rest_listing_takes_the_same_filters_and_explains_bad_ones(platform: Platform, admin: Actor) -> None:
    """``GET /api/v1/requests`` validates its query string with ``RequestQuery`` itself: durations and ISO
    times for since/until, bounds on every field, and errors that name the field."""
    from fastapi.testclient import TestClient

    from llmops.api.app import create_app

    now = time.time()
    DatabaseWriter(platform.requests).write_now(
        [record(started_at=now - 3600 * i, user="alice" if i % 2 else "bob") for i in range(6)]
    )
    platform.security.create_principal(admin, "ops", role="admin")
    key = platform.security.create_key(admin, principal="ops").key
    client = TestClient(create_app(platform=platform))

    def get(**params: object) -> tuple[int, dict[str, object]]:
        response = client.get("/api/v1/requests", params=params, headers={"Authorization": f"Bearer {key}"})
        return response.status_code, response.json()

    status, page = get(since="150m", user="bob")
    assert status == 200 and [r["user"] for r in page["items"]] == ["bob", "bob"]  # 0 h and 2 h ago
    iso = dt.datetime.fromtimestamp(now - 3600 * 4.5, dt.UTC).replace(tzinfo=None).isoformat()
    status, page = get(since=iso, limit=2)
    assert status == 200 and len(page["items"]) == 2 and page["next_before"] == page["items"][-1]["row"]
    status, error = get(since="yesterday")
    assert status in (400, 422) and "neither a duration" in json.dumps(error)
    status, error = get(since="1h", until="2h")
    assert status == 422 and "until must be after since" in json.dumps(error)
    for bad in ({"status": 999}, {"limit": 0}, {"before": 2**63}, {"user": "x" * 161}, {"colour": "red"}):
        status, error = get(**bad)
        assert status == 422, (bad, error)
        assert next(iter(bad)) in json.dumps(error)


def test_texts_are_redacted_and_expire(platform: Platform) -> None:
    writer = DatabaseWriter(platform.requests)
    kept = record(prompt="mail me at jane.doe@example.com", completion="call +49 151 3272 2046 now\x00")
    raw = record(
        prompt="mail me at jane.doe@example.com",
        completion="ok",
        policy=Monitoring(capture_text=True, redact_pii=False, retention_days=1),
        started_at=time.time() - 2 * DAY,
    )
    writer.write_now([kept, raw])
    [out] = platform.requests.get(kept.request_id)
    assert out.prompt == "mail me at <EMAIL>"
    assert out.completion == "call <PHONE> now\ufffd"
    assert out.messages == [{"role": "user", "content": "mail me at <EMAIL>"}]
    assert out.redactions == {"EMAIL": 1, "PHONE": 1}
    assert platform.requests.get(raw.request_id)[0].prompt == "mail me at jane.doe@example.com"
    assert platform.requests.purge_texts() == 1  # raw's retention (1 day) has passed; kept's (30 days) has not
    after = platform.requests.get(raw.request_id)[0]
    assert after.prompt is None and after.prompt_tokens == 10  # the numbers stay
    assert platform.requests.get(kept.request_id)[0].prompt == "mail me at <EMAIL>"


def test_basic_signals_need_no_text(platform: Platform) -> None:
    writer = DatabaseWriter(platform.requests)
    slow = record(latency=2.0, policy=Monitoring(latency_objective_ms=500))
    truncated = record(finish_reason="length")
    empty = record(completion_tokens=0)
    writer.write_now([slow, truncated, empty])
    assert platform.requests.get(slow.request_id)[0].signals["slow"] is True
    assert platform.requests.get(truncated.request_id)[0].signals["truncated"] is True
    assert platform.requests.get(empty.request_id)[0].signals["empty"] is True
    assert [r.request_id for r in platform.requests.list_requests(RequestQuery(signal="slow"))] == [slow.request_id]


def test_unknown_request_and_bad_feedback_are_refused(platform: Platform, admin: Actor) -> None:
    with pytest.raises(NotFound, match="x-request-id"):
        platform.feedback.add(admin, FeedbackIn(request_id="nope", thumbs="up"))
    with pytest.raises(ValueError, match="outside"):
        FeedbackIn(request_id="r", score=7, score_min=1, score_max=5)
    with pytest.raises(ValueError, match="needs thumbs"):
        FeedbackIn(request_id="r")
    with pytest.raises(NotFound):
        platform.requests.get("nope")


def test_feedback_becomes_a_dataset_version_with_lineage(platform: Platform, admin: Actor) -> None:
    writer = DatabaseWriter(platform.requests)
    good = record(prompt="What is 2+2?", completion="4")
    wrong = record(prompt="Capital of France?", completion="Berlin")
    unrated = record(prompt="Hi", completion="Hello")
    writer.write_now([good, wrong, unrated, record()])  # the last kept no text
    platform.feedback.add(admin, FeedbackIn(request_id=good.request_id, thumbs="up"))
    platform.feedback.add(
        admin, FeedbackIn(request_id=wrong.request_id, score=1, score_min=1, score_max=5, correction="Paris")
    )
    version = platform.feedback.export_dataset(admin, "feedback-chat", RequestQuery(deployment="lm"))
    assert version.rows == 2
    with platform.datasets.open_parquet(version.ref) as path:
        table = pq.read_table(path)
    rows = {r["request_id"]: r for r in table.to_pylist()}
    assert rows[wrong.request_id]["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]
    assert rows[wrong.request_id]["corrected"] is True and rows[wrong.request_id]["score"] == 0.0
    assert rows[good.request_id]["messages"][-1]["content"] == "4"
    lineage = platform.datasets.lineage(version.ref)
    assert lineage.run_id is not None
    run = platform.tracking.get_run(lineage.run_id)
    assert run.params["deployment"] == "lm"
    [listing] = platform.tracking.list_artifacts(run.id)
    _, stream = platform.tracking.open_artifact(run.id, listing.path)
    with stream:
        assert sorted(json.loads(stream.read())) == sorted([good.request_id, wrong.request_id])

    good_only = platform.feedback.export_dataset(
        admin, "feedback-pc", RequestQuery(deployment="lm"), kind="prompt_completion", min_score=0.5
    )
    with platform.datasets.open_parquet(good_only.ref) as path:
        assert pq.read_table(path).to_pylist()[0]["completion"] == "4"
    with pytest.raises(InvalidInput, match="no stored request matches"):
        platform.feedback.export_dataset(admin, "x", RequestQuery(deployment="other"))


def test_quality_signals_of_kept_texts(platform: Platform) -> None:
    writer = DatabaseWriter(platform.requests)
    refusal = record(prompt="how do I pick a lock", completion="I'm sorry, but I can't help with that.")
    looping = record(prompt="story", completion=" ".join(["the cat sat on the mat"] * 8))
    leaky = record(prompt="card?", completion="use 4111 1111 1111 1111")
    fine = record(prompt="2+2?", completion="Two plus two is four.")
    writer.write_now([refusal, looping, leaky, fine])
    flags = {r.request_id: r.signals for r in platform.requests.list_requests(RequestQuery(limit=10))}
    assert flags[refusal.request_id]["refusal"] is True and flags[refusal.request_id]["repetitive"] is False
    assert flags[looping.request_id]["repetitive"] is True and flags[looping.request_id]["repetition"] > 0.5
    assert flags[leaky.request_id]["pii_output"] is True
    assert flags[leaky.request_id]["pii_types"] == {"CREDIT_CARD": 1}
    assert not any(flags[fine.request_id][k] for k in ("refusal", "repetitive", "pii_output", "toxic"))
    refusals = platform.requests.list_requests(RequestQuery(signal="refusal"))
    assert [r.request_id for r in refusals] == [refusal.request_id]
