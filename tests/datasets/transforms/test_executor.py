from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmops.datasets.executor import Executor, InProcessExecutor
from llmops.datasets.kinds import DatasetKind
from llmops.datasets.pipeline import ParquetSink
from llmops.datasets.recipe import parse_recipe

from .conftest import WriteParquet, chat_table, text_table
from .planted import RECIPE, planted_texts


def run(executor: Executor, source: Path, target: Path, recipe: str = RECIPE, kind: str = "text") -> dict:  # type: ignore[type-arg]
    return executor.run(parse_recipe(recipe), source, target, kind=DatasetKind(kind))


def test_every_step_on_planted_text(write_parquet: WriteParquet, tmp_path: Path) -> None:
    texts = planted_texts()
    source = write_parquet(text_table(texts, source_id=list(range(len(texts)))))
    report = run(InProcessExecutor(batch_size=50), source, tmp_path / "out.parquet")
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["text", "source_id", "split"]  # extra columns kept, split added
    assert report["rows_in"] == len(texts) and report["rows_out"] == out.num_rows
    steps = {(s["position"], s["step"]): s for s in report["steps"]}
    normalize, filt = steps[(0, "normalize")], steps[(1, "filter")]
    exact, near = steps[(2, "dedup")], steps[(3, "dedup")]
    pii, split = steps[(4, "pii")], steps[(5, "split")]
    assert normalize["changed"] >= 12
    assert set(filt["counts"]) == {"length", "language", "repetition", "symbols"}
    assert exact["removed"] >= 14 and exact["counts"]["clusters"] >= 14
    assert near["removed"] >= 2  # the English and Chinese near duplicates
    kept_rows = {c["kept"]["row"] for c in near["examples"]}
    assert {len(texts) - 7, len(texts) - 4} <= kept_rows  # EN_A and ZH_A keep their place
    assert all(c["kept"]["text"] and c["removed"][0]["text"] for c in near["examples"])
    assert {"EMAIL", "PHONE", "CREDIT_CARD", "CN_ID"} <= set(pii["counts"])
    assert sum(split["counts"].values()) == out.num_rows
    # every step's rows_out is the next step's rows_in
    for a, b in zip(report["steps"], report["steps"][1:], strict=False):
        assert a["rows_out"] == b["rows_in"]
    text = "\n".join(out.column("text").to_pylist())
    assert "@example.com" not in text and "4111" not in text and "\u200b" not in text
    assert set(out.column("split").to_pylist()) <= {"train", "validation", "test"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in-0.parquet", "out.parquet"]  # no stage files left


def test_batch_size_does_not_change_rows_or_report(write_parquet: WriteParquet, tmp_path: Path) -> None:
    source = write_parquet(text_table(planted_texts(60)), row_group_size=17)
    outputs = []
    for batch_size in (1, 7, 10_000):
        target = tmp_path / f"out-{batch_size}.parquet"
        report = run(InProcessExecutor(batch_size=batch_size), source, target)
        outputs.append((report, target.read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_all_rows_filtered_gives_an_empty_file_with_the_schema(write_parquet: WriteParquet, tmp_path: Path) -> None:
    source = write_parquet(text_table(["a", "b"]))
    recipe = "steps:\n  - filter: {length: {min: 100}}\n  - dedup: {kind: exact}\n  - split: {}\n"
    report = run(InProcessExecutor(), source, tmp_path / "out.parquet", recipe)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.num_rows == 0 and out.column_names == ["text", "split"]
    assert report["rows_out"] == 0 and report["steps"][1]["rows_in"] == 0


def test_chat_and_prompt_completion_kinds(write_parquet: WriteParquet, tmp_path: Path) -> None:
    chats = [
        [("user", "My mail is eve@example.com, please help."), ("assistant", "Sure, I can help you with that.")],
        [("user", "my mail is eve@example.com,   please help."), ("assistant", "Sure, I can help you with that.")],
        [("user", "What is the capital of France?"), ("assistant", "The capital of France is Paris.")],
    ]
    recipe = "steps:\n  - normalize: {}\n  - dedup: {kind: exact}\n  - pii: {}\n"
    report = run(InProcessExecutor(), write_parquet(chat_table(chats)), tmp_path / "chat.parquet", recipe, "chat")
    messages = pq.read_table(tmp_path / "chat.parquet").column("messages").to_pylist()
    assert len(messages) == 2 and messages[0][0]["content"] == "My mail is <EMAIL>, please help."
    assert report["steps"][2]["counts"] == {"EMAIL": 1}

    pc = pa.table({"prompt": ["Call 13812345678", "Call 13812345678"], "completion": ["ok", "OK"]})
    run(InProcessExecutor(), write_parquet(pc), tmp_path / "pc.parquet", recipe, "prompt_completion")
    assert pq.read_table(tmp_path / "pc.parquet").to_pylist() == [{"prompt": "Call <PHONE>", "completion": "ok"}]


def test_sink_writes_exact_row_groups(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "x.parquet", row_group_rows=4)
    for n in (3, 2, 6):
        sink.write(text_table(["t"] * n))
    sink.close()
    meta = pq.ParquetFile(tmp_path / "x.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 4, 3]
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        InProcessExecutor(batch_size=0)
