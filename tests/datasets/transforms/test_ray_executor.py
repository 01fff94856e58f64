"""The Ray executor gives the same rows, in the same order, and the same report as in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from llmops.datasets.executor import InProcessExecutor
from llmops.datasets.kinds import DatasetKind
from llmops.datasets.ray_executor import RayExecutor
from llmops.datasets.recipe import parse_recipe

from .conftest import WriteParquet, chat_table, text_table
from .planted import RECIPE, planted_texts


def test_ray_matches_in_process_on_every_step(ray_local: Any, write_parquet: WriteParquet, tmp_path: Path) -> None:
    texts = planted_texts(150)
    source = write_parquet(text_table(texts, source_id=list(range(len(texts)))), row_group_size=64)
    recipe = parse_recipe(RECIPE)
    local = InProcessExecutor(batch_size=100).run(recipe, source, tmp_path / "a.parquet", kind=DatasetKind.text)
    remote = RayExecutor(batch_size=40).run(recipe, source, tmp_path / "b.parquet", kind=DatasetKind.text)
    assert remote == local
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.num_rows == local["rows_out"] and a.num_rows < len(texts)
    assert a.equals(b)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert all(step["removed"] or step["changed"] or step["counts"] for step in local["steps"])


def test_ray_matches_in_process_on_chat(ray_local: Any, write_parquet: WriteParquet, tmp_path: Path) -> None:
    chats = [
        [("user", f"Question {i}: how do I reach support?"), ("assistant", f"Write to help{i % 3}@example.com.")]
        for i in range(30)
    ]
    chats += [chats[0], chats[5]]
    source = write_parquet(chat_table(chats))
    recipe = parse_recipe("steps:\n  - normalize: {}\n  - dedup: {kind: exact}\n  - pii: {}\n  - split: {}\n")
    local = InProcessExecutor().run(recipe, source, tmp_path / "a.parquet", kind=DatasetKind.chat)
    remote = RayExecutor(batch_size=7).run(recipe, source, tmp_path / "b.parquet", kind=DatasetKind.chat)
    assert remote == local and local["rows_out"] == 30
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))
