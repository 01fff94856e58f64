"""Importing datasets: every format and kind, content addressing, and a corpus of bad inputs.

Formats are checked on the embedded stack (they exercise the readers, not the backends); storage behaviour
(content addressing, blob references) runs on both stacks through the ``platform`` fixture.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from llmops.blobs.tables import BlobRef
from llmops.datasets import readers
from llmops.datasets.kinds import DatasetKind
from llmops.datasets.readers import ColumnMap
from llmops.errors import InvalidInput
from llmops.platform import Platform
from llmops.security.actor import Actor
from tests.datasets.conftest import CHAT_ROWS, PC_ROWS, TEXT_ROWS, write_jsonl


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json-array", "json-data", "csv", "parquet"])
def test_every_format_imports_text_rows(embedded_platform: Platform, admin: Actor, tmp_path: Path, fmt: str) -> None:
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "rows.jsonl", TEXT_ROWS)
    elif fmt == "json-array":
        path = tmp_path / "rows.json"
        path.write_text(json.dumps(TEXT_ROWS, ensure_ascii=False, indent=2), encoding="utf-8")
    elif fmt == "json-data":
        path = tmp_path / "rows.json"
        path.write_text(json.dumps({"data": TEXT_ROWS}, ensure_ascii=False), encoding="utf-8")
    elif fmt == "csv":
        path = write_csv(tmp_path / "rows.csv", TEXT_ROWS)
    else:
        path = tmp_path / "rows.parquet"
        pq.write_table(pa.Table.from_pylist(TEXT_ROWS), path)
    v = embedded_platform.datasets.import_path(admin, path, name="texts")
    assert (v.ref, v.kind, v.rows) == ("texts:1", DatasetKind.text, 3)
    assert [c.name for c in v.columns] == ["text", "id"]
    rows = embedded_platform.datasets.head("texts", 10)
    expected_ids: list[Any] = [1, 2, 3] if fmt != "csv" else ["1", "2", "3"]  # CSV cells are text
    assert rows == [{"text": r["text"], "id": i} for r, i in zip(TEXT_ROWS, expected_ids, strict=True)]
    assert v.source is not None and v.source["format"] == fmt.split("-")[0]


def test_kinds_are_detected_and_kept(embedded_platform: Platform, admin: Actor, tmp_path: Path) -> None:
    chat = embedded_platform.datasets.import_path(admin, write_jsonl(tmp_path / "c.jsonl", CHAT_ROWS), name="chat")
    assert chat.kind is DatasetKind.chat
    assert [(c.name, c.type) for c in chat.columns] == [
        ("messages", "list<item: struct<role: string, content: string>>"),
        ("source", "string"),
    ]
    assert embedded_platform.datasets.head("chat", 5) == [{**CHAT_ROWS[0], "source": None}, CHAT_ROWS[1]]

    pc = embedded_platform.datasets.import_path(admin, write_csv(tmp_path / "pc.csv", PC_ROWS), name="pc")
    assert pc.kind is DatasetKind.prompt_completion and pc.rows == 2
    assert list(embedded_platform.datasets.texts("pc")) == ["2+2=\n4", "Capital of France?\nParis"]

    # Chat from Parquet (nested list of structs) and from CSV (messages as JSON text) give the same rows.
    pq.write_table(pa.Table.from_pylist([{"messages": r["messages"]} for r in CHAT_ROWS]), tmp_path / "c.parquet")
    a = embedded_platform.datasets.import_path(admin, tmp_path / "c.parquet", name="chat2")
    write_csv(tmp_path / "c.csv", [{"messages": json.dumps(r["messages"])} for r in CHAT_ROWS])
    b = embedded_platform.datasets.import_path(admin, tmp_path / "c.csv", name="chat3")
    assert a.content_digest == b.content_digest and a.blob_digest == b.blob_digest

    # A directory of text files: one row per file, its relative path in `source`, sorted by path.
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "b.md").write_text("# Title\n\nbody", encoding="utf-8")
    (docs / "a.txt").write_text("plain text", encoding="utf-8")
    (docs / "sub" / "c.rst").write_text("中文文本", encoding="utf-8")
    (docs / "ignored.bin").write_bytes(b"\x00\x01")
    d = embedded_platform.datasets.import_path(admin, docs, name="docs")
    assert (d.kind, d.rows) == (DatasetKind.text, 3)
    assert embedded_platform.datasets.head("docs", 5) == [
        {"text": "plain text", "source": "a.txt"},
        {"text": "# Title\n\nbody", "source": "b.md"},
        {"text": "中文文本", "source": "sub/c.rst"},
    ]


def test_explicit_column_names(embedded_platform: Platform, admin: Actor, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "a?", "answer": "b", "meta": {"k": [1, 2]}}])
    with pytest.raises(InvalidInput) as err:
        embedded_platform.datasets.import_path(admin, path, name="qa")
    assert "no accepted columns (found 'question', 'answer', 'meta')" in err.value.message
    assert "--prompt-column" in err.value.message
    v = embedded_platform.datasets.import_path(
        admin, path, name="qa", columns=ColumnMap(prompt="question", completion="answer")
    )
    assert v.kind is DatasetKind.prompt_completion
    # Nested values of kept columns are stored as JSON text.
    assert embedded_platform.datasets.head("qa", 1) == [{"prompt": "a?", "completion": "b", "meta": '{"k": [1, 2]}'}]


def test_same_content_is_one_version(platform: Platform, admin: Actor, text_jsonl: Path, tmp_path: Path) -> None:
    first = platform.datasets.import_path(admin, text_jsonl, name="corpus", tags={"a": "b"})
    assert not first.reused_existing_version and first.ref == "corpus:1"
    # The same rows from another format with the same column types: the same content, the same version.
    pq.write_table(pa.Table.from_pylist(TEXT_ROWS), tmp_path / "same.parquet")
    again = platform.datasets.import_path(admin, tmp_path / "same.parquet", name="corpus")
    assert again.reused_existing_version and again.ref == "corpus:1"
    assert again.content_digest == first.content_digest
    changed = write_jsonl(tmp_path / "changed.jsonl", [*TEXT_ROWS, {"text": "one more", "id": 4}])
    second = platform.datasets.import_path(admin, changed, name="corpus")
    assert second.ref == "corpus:2" and second.content_digest != first.content_digest
    # Row order is content too.
    reordered = write_jsonl(tmp_path / "reordered.jsonl", list(reversed(TEXT_ROWS)))
    assert platform.datasets.import_path(admin, reordered, name="corpus").ref == "corpus:3"
    # Another dataset with the same rows is its own version but shares the stored file.
    other = platform.datasets.import_path(admin, text_jsonl, name="copy")
    assert other.ref == "copy:1" and other.blob_digest == first.blob_digest
    assert [v.version for v in platform.datasets.list_versions("corpus")] == [3, 2, 1]
    with platform.db.read() as session:
        owners = set(session.scalars(select(BlobRef.owner_id).where(BlobRef.owner_kind == "dataset_version")))
    assert owners == {"corpus:1", "corpus:2", "corpus:3", "copy:1"}
    assert platform.store.fsck().clean
    listing = {d.name: (d.versions, d.latest, d.rows) for d in platform.datasets.list_datasets()}
    assert listing == {"corpus": (3, 3, 3), "copy": (1, 1, 3)}


# --- bad input ----------------------------------------------------------------------------------------------
def _bad_cases(tmp: Path) -> list[tuple[str, Path, dict[str, Any], str]]:
    """(label, path, import options, expected message fragment)."""
    cases: list[tuple[str, Path, dict[str, Any], str]] = []

    def file(name: str, data: bytes | str) -> Path:
        path = tmp / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    cases.append(("not utf-8", file("latin1.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n'), {},
                  "latin1.jsonl line 2 is not valid UTF-8"))  # fmt: skip
    cases.append(("bad json line", file("broken.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": "c\n'), {},
                  "broken.jsonl line 3 is not valid JSON"))  # fmt: skip
    cases.append(("empty jsonl", file("empty.jsonl", "\n\n"), {}, "empty.jsonl is empty"))
    cases.append(("empty csv", file("empty.csv", ""), {}, "empty.csv is empty"))
    cases.append(
        ("header only", file("header.csv", "text,id\n"), {}, "header.csv is empty: it has a header but no rows")
    )
    mixed = file("mixed.jsonl", '{"text": "a"}\n{"messages": [{"role": "user", "content": "x"}]}\n')
    cases.append(
        (
            "mixed kinds",
            mixed,
            {},
            "mixed.jsonl line 2: mixed kinds: this row is chat (messages) but the dataset is text",
        )
    )
    cases.append(("missing column", file("missing.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n'),
                  {}, "missing.jsonl line 2: missing column 'completion'"))  # fmt: skip
    cases.append(("message without content", file("chat.jsonl", '{"messages": [{"role": "user"}]}\n'), {},
                  "chat.jsonl line 1: message 1 needs a string 'content' (missing)"))  # fmt: skip
    extra = file("chat2.jsonl", '{"messages": [{"role": "u", "content": "c", "name": "n"}]}\n')
    cases.append(("message extra key", extra, {}, "message 1 has keys 'name' besides role and content"))
    cases.append(("text not a string", file("num.jsonl", '{"text": "a"}\n{"text": 5}\n'), {},
                  "num.jsonl line 2: 'text' must be a string, got int"))  # fmt: skip
    cases.append(
        ("row not an object", file("list.jsonl", '["a", "b"]\n'), {}, "list.jsonl line 1: a row must be an object")
    )
    cases.append(("csv not utf-8", file("latin1.csv", b"text\nok\ncaf\xe9\n"), {}, "latin1.csv is not valid UTF-8"))
    cases.append(
        (
            "csv fields",
            file("fields.csv", "text,id\na,1\nb,2,3\n"),
            {},
            "fields.csv line 3 has 3 fields, the header has 2",
        )
    )
    cases.append(("corrupt parquet", file("corrupt.parquet", b"PAR1" + bytes(range(256)) * 4), {},
                  "corrupt.parquet is not a readable Parquet file"))  # fmt: skip
    cases.append(("json element", file("array.json", '[{"text": "a"},\n {"text": "b",,}]'), {},
                  "array.json line 2: element 2 is not valid JSON"))  # fmt: skip
    cases.append(("json object", file("object.json", '{"rows": []}'), {}, 'must hold the rows as a list under "data"'))
    cases.append(("json not utf-8", file("bad.json", b'[{"text": "\xff"}]'), {}, "bad.json is not valid UTF-8"))
    cases.append(("unknown suffix", file("data.xml", "<a/>"), {}, "cannot tell the format of data.xml"))
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("fine", encoding="utf-8")
    (docs / "b.txt").write_bytes(b"line one\n\xff\xfe")
    cases.append(("text dir not utf-8", docs, {}, "b.txt line 2 is not valid UTF-8"))
    cases.append(("empty dir", (tmp / "nothing").resolve(), {}, "has no files to import"))
    (tmp / "nothing").mkdir()
    wrong = "k.jsonl line 1: missing column 'messages'; chat rows need 'messages' (this row looks like text)"
    cases.append(("wrong kind", file("k.jsonl", '{"text": "a"}\n'), {"kind": "chat"}, wrong))
    return cases


def test_bad_input_is_refused_with_file_and_line(embedded_platform: Platform, admin: Actor, tmp_path: Path) -> None:
    problems = []
    for label, path, options, fragment in _bad_cases(tmp_path):
        try:
            embedded_platform.datasets.import_path(admin, path, name="bad", **options)
        except InvalidInput as exc:
            if fragment not in exc.message:
                problems.append(f"{label}: {exc.message!r} lacks {fragment!r}")
        else:
            problems.append(f"{label}: imported")
    assert not problems, "\n".join(problems)
    assert embedded_platform.datasets.list_datasets() == []
    assert list(embedded_platform.blobs.iter_blobs()) == []  # refused before anything was stored


def test_later_batches_must_keep_the_columns_of_the_first(
    embedded_platform: Platform, admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Columns and their types are decided by the first batch; a later row that disagrees is named."""
    monkeypatch.setattr(readers, "BATCH_ROWS", 1)
    types = write_jsonl(tmp_path / "types.jsonl", [{"text": "a", "n": 1}, {"text": "b", "n": "x"}])
    with pytest.raises(InvalidInput, match="types.jsonl line 2: column 'n' holds str here but int64 in the first rows"):
        embedded_platform.datasets.import_path(admin, types, name="bad")
    cols = write_jsonl(tmp_path / "cols.jsonl", [{"text": "a"}, {"text": "b", "extra": 1}])
    with pytest.raises(InvalidInput, match="cols.jsonl line 2: column 'extra' does not appear in the first rows"):
        embedded_platform.datasets.import_path(admin, cols, name="bad")
    # Within the first batch, mixed scalar types become text (nothing lost) and late columns are kept.
    monkeypatch.setattr(readers, "BATCH_ROWS", 100)
    v = embedded_platform.datasets.import_path(admin, types, name="mixed")
    assert embedded_platform.datasets.head(v.ref, 2) == [{"text": "a", "n": "1"}, {"text": "b", "n": "x"}]
    assert [d.name for d in embedded_platform.datasets.list_datasets()] == ["mixed"]


def test_a_huge_line_is_refused_without_reading_it(
    embedded_platform: Platform, admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "MAX_ROW_BYTES", 1000)
    path = tmp_path / "huge.jsonl"
    path.write_text('{"text": "short"}\n{"text": "' + "x" * 5000 + '"}\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="huge.jsonl line 2 is longer than 1,000 bytes"):
        embedded_platform.datasets.import_path(admin, path, name="huge")


def test_batches_are_bounded_and_row_groups_at_most_50k(
    embedded_platform: Platform, admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "BATCH_ROWS", 7)
    rows = [{"text": f"row {i}"} for i in range(30)]
    v = embedded_platform.datasets.import_path(admin, write_jsonl(tmp_path / "many.jsonl", rows), name="many")
    assert v.rows == 30
    with embedded_platform.datasets.open_parquet("many") as path:
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups == 5 and max(meta.row_group(i).num_rows for i in range(5)) == 7
        assert meta.row_group(0).column(0).compression == "ZSTD"
    # The digest depends on the rows only, not on how they were batched.
    monkeypatch.setattr(readers, "BATCH_ROWS", 50_000)
    again = embedded_platform.datasets.import_path(admin, tmp_path / "many.jsonl", name="many")
    assert again.reused_existing_version and again.ref == "many:1"
