from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.split import Split, SplitConfig, assign_split

from .conftest import report, text_table


def split_of(texts: list[str], config: SplitConfig) -> list[str]:
    out = Split(config).apply(text_table(texts), DatasetKind.text, report())
    return [str(v) for v in out.column(config.column).to_pylist()]


def test_deterministic_and_stable_under_appends() -> None:
    config = SplitConfig(fractions={"train": 0.8, "validation": 0.1, "test": 0.1}, seed=7)
    texts = [f"row number {i}" for i in range(500)]
    first = split_of(texts, config)
    assert split_of(texts, config) == first
    grown = split_of(texts + [f"new row {i}" for i in range(300)], config)
    assert grown[:500] == first  # adding rows never moves existing ones
    assert split_of(list(reversed(texts)), config) == list(reversed(first))


def test_seed_changes_assignment_and_copies_stay_together() -> None:
    texts = [f"row number {i}" for i in range(200)]
    a = split_of(texts, SplitConfig(seed=1))
    b = split_of(texts, SplitConfig(seed=2))
    assert a != b
    assert len(set(split_of(["same text"] * 20, SplitConfig()))) == 1


@settings(max_examples=25, deadline=None)
@given(
    train=st.floats(min_value=0.1, max_value=0.9),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_fractions_within_tolerance(train: float, seed: int) -> None:
    rest = 1.0 - train
    config = SplitConfig(fractions={"train": train, "validation": rest / 2, "test": rest / 2}, seed=seed)
    n = 4000
    names = [assign_split(f"document {i}", config) for i in range(n)]
    for name, fraction in config.fractions.items():
        share = names.count(name) / n
        tolerance = 5 * (fraction * (1 - fraction) / n) ** 0.5 + 1e-9
        assert abs(share - fraction) <= tolerance, (name, share, fraction)


def test_report_counts_and_existing_column_replaced() -> None:
    r = report("split")
    table = text_table(["a", "b", "c"], split=["x", "x", "x"])
    out = Split(SplitConfig(fractions={"train": 1.0})).apply(table, DatasetKind.text, r)
    assert out.column_names == ["text", "split"]
    assert out.column("split").to_pylist() == ["train"] * 3
    assert r.counts == {"train": 3}


def test_fractions_must_sum_to_one() -> None:
    with pytest.raises(ValidationError, match="sum to 1"):
        SplitConfig(fractions={"train": 0.8, "test": 0.1})
    with pytest.raises(ValidationError, match="≥ 0"):
        SplitConfig(fractions={"train": 1.2, "test": -0.2})
