"""Runs through the Python API: lifecycle, params, metric series and summaries, parents, listing and
comparison, on both stacks."""

from __future__ import annotations

import pytest

from llmops.errors import Conflict, InvalidInput, NotFound
from llmops.platform import Platform
from llmops.security.actor import Actor


def test_finished_run_records_params_and_metrics(platform: Platform) -> None:
    with platform.start_run(kind="train", name="tiny-gpt", tags={"team": "nlp"}, description="smoke") as run:
        run.log_params({"lr": 0.001, "epochs": 3, "use_amp": True, "optimizer": "adamw"}, batch_size=8)
        for step, (loss, acc) in enumerate([(2.5, 0.1), (1.25, 0.4), (1.5, 0.35), (0.75, 0.6)]):
            run.log_metrics({"loss": loss, "acc": acc}, step=step * 10)
        run.set_tags(stage="pretrain")
    detail = platform.tracking.get_run(run.id)
    assert detail.status == "finished" and detail.ended_at is not None and detail.end_reason is None
    assert (detail.kind, detail.name, detail.description) == ("train", "tiny-gpt", "smoke")
    assert detail.created_by.startswith("python:")
    assert detail.params == {"lr": "0.001", "epochs": "3", "use_amp": "True", "optimizer": "adamw", "batch_size": "8"}
    assert all(isinstance(v, str) for v in detail.params.values())
    assert detail.tags == {"team": "nlp", "stage": "pretrain"}

    series = platform.tracking.metric_series(run.id, "loss")
    assert [(p.step, p.value) for p in series.points] == [(0, 2.5), (10, 1.25), (20, 1.5), (30, 0.75)]
    summaries = {m.key: m for m in detail.metrics}
    assert sorted(summaries) == ["acc", "loss"]
    s = summaries["loss"]
    assert (s.last, s.min, s.max, s.count, s.last_step) == (0.75, 0.75, 2.5, 4, 30)
    a = summaries["acc"]
    assert (a.last, a.min, a.max, a.count, a.last_step) == (0.6, 0.1, 0.6, 4, 30)


def test_series_is_ordered_by_step_and_last_is_the_value_at_the_last_step(platform: Platform) -> None:
    with platform.start_run(kind="eval", name="out-of-order") as run:
        for step, value in [(2, 0.2), (0, 0.0), (3, 0.3), (1, 0.1)]:
            run.log_metric("x", value, step=step)
    series = platform.tracking.metric_series(run.id, "x")
    assert [(p.step, p.value) for p in series.points] == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)]
    [summary] = platform.tracking.get_run(run.id).metrics
    assert (summary.last_step, summary.last, summary.count) == (3, 0.3, 4)


def test_exact_values_survive(platform: Platform) -> None:
    values = [0.1, 1e-300, -1e300, 123456789.123456789, 2.0**-1074, -0.0, 1 / 3]
    with platform.start_run(kind="train", name="exact") as run:
        for step, value in enumerate(values):
            run.log_metric("v", value, step=step)
    assert [p.value for p in platform.tracking.metric_series(run.id, "v").points] == values


def test_default_steps_increment_per_key(platform: Platform) -> None:
    with platform.start_run(kind="train", name="steps") as run:
        run.log_metrics({"a": 1.0})
        run.log_metrics({"a": 2.0, "b": 5.0})
        run.log_metric("a", 3.0)
        run.log_metric("b", 6.0, step=10)
        run.log_metric("b", 7.0)
    steps = {key: [p.step for p in platform.tracking.metric_series(run.id, key).points] for key in ("a", "b")}
    assert steps == {"a": [0, 1, 2], "b": [0, 10, 11]}


def test_exception_marks_run_failed(platform: Platform) -> None:
    with pytest.raises(ValueError, match="diverged"), platform.start_run(kind="train", name="boom") as run:
        run.log_metric("loss", 1.0)
        raise ValueError("loss diverged at step 7")
    detail = platform.tracking.get_run(run.id)
    assert detail.status == "failed"
    assert detail.end_reason is not None
    assert "ValueError" in detail.end_reason and "diverged at step 7" in detail.end_reason
    assert [m.count for m in detail.metrics] == [1]  # points logged before the failure are kept


def test_keyboard_interrupt_marks_run_killed(platform: Platform) -> None:
    with pytest.raises(KeyboardInterrupt), platform.start_run(kind="train", name="ctrl-c") as run:
        raise KeyboardInterrupt
    detail = platform.tracking.get_run(run.id)
    assert detail.status == "killed" and detail.end_reason == "KeyboardInterrupt"


def test_explicit_end_inside_the_block(platform: Platform) -> None:
    """Ending a run inside its ``with`` block is respected, not overwritten (nor a Conflict) on exit."""
    with platform.start_run(kind="eval", name="early") as run:
        run.end("killed", "budget exhausted")
    detail = platform.tracking.get_run(run.id)
    assert (detail.status, detail.end_reason) == ("killed", "budget exhausted")


def test_params_are_write_once(platform: Platform) -> None:
    with platform.start_run(kind="train", name="params") as run:
        run.log_params({"lr": 0.1, "layers": 4})
        run.log_params({"lr": 0.1})  # same value: fine
        run.log_param("layers", "4")  # same text: fine
        with pytest.raises(Conflict, match="write-once"):
            run.log_params({"lr": 0.2})
        with pytest.raises(Conflict):
            run.log_params({"new": 1, "layers": 5})  # all or nothing
    assert platform.tracking.get_run(run.id).params == {"lr": "0.1", "layers": "4"}


def test_invalid_keys_and_values(platform: Platform) -> None:
    with platform.start_run(kind="train", name="invalid") as run:
        for bad in ("", "../x", "/abs", "a" * 251, "tab\tkey"):
            with pytest.raises(InvalidInput):
                run.log_params({bad: 1})
        with pytest.raises(InvalidInput):
            run.log_params({"long": "x" * 6001})
        for bad_value in (float("nan"), float("inf"), float("-inf")):
            with pytest.raises(InvalidInput, match="finite"):
                run.log_metric("loss", bad_value)
        with pytest.raises(InvalidInput):
            run.log_metric("bad key!", 1.0)
        run.log_metric("loss", 1.0)  # a rejected point does not poison later ones
    detail = platform.tracking.get_run(run.id)
    assert detail.status == "finished"
    assert [(m.key, m.count) for m in detail.metrics] == [("loss", 1)]
    assert detail.params == {}


def test_service_rejects_non_finite_metrics(platform: Platform, admin: Actor) -> None:
    run = platform.tracking.create_run(admin, kind="train", name="svc")
    with pytest.raises(InvalidInput) as info:
        platform.tracking.log_metrics(run.id, [("ok", 1.0, 0, 0), ("loss", float("nan"), 1, 0)])
    assert "finite" in info.value.message
    assert platform.tracking.get_run(run.id).metrics == []  # the whole batch or nothing


def test_logging_to_an_ended_run_conflicts(platform: Platform, admin: Actor) -> None:
    with platform.start_run(kind="train", name="ended") as run:
        run.log_metric("loss", 1.0)
    with pytest.raises(Conflict, match="ended"):
        run.log_params({"late": 1})
    with pytest.raises(Conflict, match="ended"):
        run.log_metric("loss", 2.0)
    with pytest.raises(Conflict, match="ended"):
        platform.tracking.log_metrics(run.id, [("loss", 2.0, 5, 0)])
    with pytest.raises(Conflict):
        platform.tracking.end_run(admin, run.id, "failed")
    detail = platform.tracking.get_run(run.id)
    assert detail.status == "finished" and [m.count for m in detail.metrics] == [1]


def test_run_validation(platform: Platform, admin: Actor) -> None:
    with pytest.raises(InvalidInput) as info:
        platform.tracking.create_run(admin, kind="party", name="x")
    assert info.value.details == {"field": "kind"}
    with pytest.raises(InvalidInput) as info:
        platform.tracking.create_run(admin, kind="train", name="no/slash")
    assert info.value.details == {"field": "name"}
    run = platform.tracking.create_run(admin, kind="train", name="ok")
    with pytest.raises(InvalidInput):
        platform.tracking.end_run(admin, run.id, "exploded")
    with pytest.raises(NotFound):
        platform.tracking.get_run("0" * 32)
    with pytest.raises(NotFound):
        platform.tracking.get_run("not-a-run-id" * 10)
    with pytest.raises(NotFound):
        platform.tracking.metric_series(run.id, "never-logged")


def test_parent_runs(platform: Platform, admin: Actor) -> None:
    with platform.start_run(kind="pipeline", name="sweep") as parent:
        with platform.start_run(kind="train", name="trial-1", parent=parent) as child:
            pass
        with platform.start_run(kind="train", name="trial-2", parent=parent.id) as child2:
            pass
    assert platform.tracking.get_run(child.id).parent_id == parent.id
    assert platform.tracking.get_run(child2.id).parent_id == parent.id
    assert platform.tracking.get_run(parent.id).parent_id is None
    with pytest.raises(NotFound, match="parent"):
        platform.tracking.create_run(admin, kind="train", name="orphan", parent_id="f" * 32)


def test_list_runs_filters_and_pages(platform: Platform, admin: Actor) -> None:
    made: dict[str, str] = {}
    for kind, name, status in [
        ("train", "alpha-1", "finished"),
        ("train", "alpha-2", "failed"),
        ("eval", "beta_x_1", "finished"),
        ("eval", "alpha-eval", "running"),
        ("data", "gamma", "killed"),
    ]:
        run = platform.tracking.create_run(admin, kind=kind, name=name)
        if status != "running":
            platform.tracking.end_run(admin, run.id, status)
        made[name] = run.id

    everything = platform.tracking.list_runs()
    assert everything.total == 5
    assert [r.name for r in everything.runs] == ["gamma", "alpha-eval", "beta_x_1", "alpha-2", "alpha-1"]

    def names(**kwargs: object) -> set[str]:
        result = platform.tracking.list_runs(**kwargs)  # type: ignore[arg-type]
        assert result.total == len(result.runs)
        return {r.name for r in result.runs}

    assert names(kind="train") == {"alpha-1", "alpha-2"}
    assert names(status="finished") == {"alpha-1", "beta_x_1"}
    assert names(kind="eval", status="running") == {"alpha-eval"}
    assert names(name="alpha") == {"alpha-1", "alpha-2", "alpha-eval"}
    assert names(name="%") == set()  # substring match, LIKE wildcards escaped
    assert names(name="_") == {"beta_x_1"}
    assert names(kind="compress") == set()

    page1 = platform.tracking.list_runs(limit=2, offset=0)
    page2 = platform.tracking.list_runs(limit=2, offset=2)
    page3 = platform.tracking.list_runs(limit=2, offset=4)
    assert page1.total == page2.total == page3.total == 5
    assert [len(p.runs) for p in (page1, page2, page3)] == [2, 2, 1]
    paged = [r.id for p in (page1, page2, page3) for r in p.runs]
    assert paged == [r.id for r in everything.runs]
    assert platform.tracking.list_runs(offset=10).runs == []


def test_compare(platform: Platform, admin: Actor) -> None:
    a = platform.tracking.create_run(admin, kind="train", name="a", params={"lr": 0.1, "bs": 8, "only_a": "x"})
    b = platform.tracking.create_run(admin, kind="train", name="b", params={"lr": 0.2, "bs": 8})
    platform.tracking.log_metrics(a.id, [("loss", 1.0, 0, 0)])
    platform.tracking.log_metrics(b.id, [("loss", 0.5, 0, 0), ("acc", 0.9, 0, 0)])
    result = platform.tracking.compare([a.id, b.id])
    assert [r.id for r in result.runs] == [a.id, b.id]
    assert result.param_keys == ["bs", "lr", "only_a"]
    assert result.differing_params == ["lr", "only_a"]
    assert result.metric_keys == ["acc", "loss"]
    for bad in ([], [a.id], [a.id] * 21):
        with pytest.raises(InvalidInput) as info:
            platform.tracking.compare(bad)
        assert info.value.details == {"field": "ids"}
    with pytest.raises(NotFound):
        platform.tracking.compare([a.id, "e" * 32])


def test_ten_thousand_points_land_exactly(platform: Platform) -> None:
    n = 10_000
    with platform.start_run(kind="train", name="many") as run:
        for i in range(n):
            run.log_metric("loss", i * 0.5)
    detail = platform.tracking.get_run(run.id)
    [summary] = detail.metrics
    assert (summary.count, summary.last_step, summary.last, summary.min, summary.max) == (
        n,
        n - 1,
        (n - 1) * 0.5,
        0.0,
        (n - 1) * 0.5,
    )
    points = platform.tracking.metric_series(run.id, "loss").points
    assert len(points) == n
    assert [p.step for p in points] == list(range(n))
    assert all(p.value == p.step * 0.5 for p in points)
