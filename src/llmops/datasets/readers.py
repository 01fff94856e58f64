"""Reading source files into validated Arrow batches of one dataset kind.

Every format becomes the same thing: a :class:`Source` with a kind, an Arrow schema (the kind's required
columns first, then the source's other columns) and an iterator of record batches. Files are read
streaming, a bounded batch at a time (at most :data:`BATCH_ROWS` rows or about :data:`BATCH_BYTES` of
text), so memory does not grow with the file. Rows are validated as they are read, and every error names
the file and the line (JSONL, CSV), element (JSON) or row (Parquet) so that it can be fixed at the source.

Accepted shapes (after the optional column renames of :class:`ColumnMap`):

- ``messages`` (a list of ``{"role", "content"}`` objects) → ``chat``
- ``prompt`` and ``completion`` → ``prompt_completion``
- ``text`` → ``text``

Other columns are kept: scalars as they are, nested values (objects, lists) as JSON text.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from llmops.datasets.kinds import MESSAGE_TYPE, DatasetKind, required_schema, text_columns
from llmops.errors import InvalidInput

BATCH_ROWS = 50_000
BATCH_BYTES = 32 << 20
MAX_ROW_BYTES = 64 << 20  # one line, element or text file; a longer one is refused, not read into memory
PARQUET_READ_ROWS = 10_000
TEXT_SUFFIXES = frozenset({".txt", ".md", ".rst"})
SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".md": "text",
    ".rst": "text",
}
FORMATS = ("jsonl", "json", "csv", "parquet", "text")
SHAPES = "'messages' (chat), 'prompt' + 'completion' (prompt_completion) or 'text' (text)"

Row = dict[str, Any]
Located = tuple[Any, str]  # a raw row and where it came from ("data.jsonl line 3")


@dataclass(frozen=True)
class ColumnMap:
    """Source column names to use for the canonical columns (``--text-column body`` and so on)."""

    text: str | None = None
    prompt: str | None = None
    completion: str | None = None
    messages: str | None = None

    def renames(self) -> dict[str, str]:
        """source name → canonical name."""
        pairs = {"text": self.text, "prompt": self.prompt, "completion": self.completion, "messages": self.messages}
        return {src: canonical for canonical, src in pairs.items() if src and src != canonical}

    def implied_kind(self) -> DatasetKind | None:
        if self.messages:
            return DatasetKind.chat
        if self.prompt or self.completion:
            return DatasetKind.prompt_completion
        if self.text:
            return DatasetKind.text
        return None


@dataclass
class Source:
    """A validated stream of batches, all with ``schema``."""

    kind: DatasetKind
    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    format: str
    files: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"format": self.format, "files": self.files[:100], "file_count": len(self.files)}


def bad(message: str, **details: Any) -> InvalidInput:
    return InvalidInput(message, details=details or None)


# --- entry point ---------------------------------------------------------------------------------------------
def open_source(
    path: Path,
    *,
    fmt: str | None = None,
    kind: DatasetKind | str | None = None,
    columns: ColumnMap | None = None,
) -> Source:
    """Open ``path`` (a file, or a directory of text or data files) as a validated :class:`Source`.

    The first batch is read here, so a file that cannot become a dataset at all (empty, no accepted
    columns, not the format it claims) fails before anything is written.
    """
    path = Path(path)
    if "\x00" in str(path):
        raise bad("path: contains a NUL character", field="path")
    if not path.exists():
        raise bad(f"{path} does not exist", field="path")
    if fmt is not None and fmt not in FORMATS:
        raise bad(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
    columns = columns or ColumnMap()
    wanted = DatasetKind(kind) if kind is not None else columns.implied_kind()
    files, fmt = _plan(path, fmt)
    if fmt == "parquet":
        return _parquet_source(files, path, wanted, columns)
    rows = _chain(files, path, fmt)
    return _row_source(rows, fmt, [_rel(f, path) for f in files], wanted, columns, extra_types={})


def open_parquet_source(path: Path, *, kind: DatasetKind | str | None = None) -> Source:
    """A Parquet file written by a transform (or anyone) as a validated source, columns as they are named."""
    path = Path(path)
    if not path.is_file():
        raise bad(f"{path} is not a file", field="path")
    return _parquet_source([path], path, DatasetKind(kind) if kind else None, ColumnMap())


def _rel(file: Path, root: Path) -> str:
    return file.name if root.is_file() else file.relative_to(root).as_posix()


def _plan(path: Path, fmt: str | None) -> tuple[list[Path], str]:
    """The files to read, in order, and their format."""
    if path.is_file():
        fmt = fmt or SUFFIX_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise bad(
                f"cannot tell the format of {path.name} from its name; pass a format: {', '.join(FORMATS)}",
                file=path.name,
            )
        return [path], fmt
    if not path.is_dir():
        raise bad(f"{path} is neither a file nor a directory", field="path")
    found: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            kind = SUFFIX_FORMATS.get(full.suffix.lower())
            if name.startswith(".") or kind is None or not full.is_file():
                continue
            found.setdefault(kind, []).append(full)
    if fmt is not None:
        files = found.get(fmt, [])
    elif len(found) == 1:
        fmt, files = next(iter(found.items()))
    elif not found:
        files = []
    else:
        raise bad(
            f"{path} holds files of several formats ({', '.join(sorted(found))}); pass the format to read",
            field="format",
        )
    if not files:
        raise bad(
            f"{path} has no files to import: expected text files ({', '.join(sorted(TEXT_SUFFIXES))}) "
            f"or data files ({', '.join(k for k in SUFFIX_FORMATS if SUFFIX_FORMATS[k] != 'text')})",
            field="path",
        )
    assert fmt is not None
    return files, fmt


def _chain(files: list[Path], root: Path, fmt: str) -> Iterator[Located]:
    readers: dict[str, Callable[[Path, str], Iterator[Located]]] = {
        "jsonl": _jsonl_rows,
        "json": _json_rows,
        "csv": _csv_rows,
        "text": _text_file_rows,
    }
    for file in files:
        yield from readers[fmt](file, _rel(file, root))


# --- JSONL ---------------------------------------------------------------------------------------------------
def _jsonl_rows(path: Path, name: str) -> Iterator[Located]:
    seen = False
    with open(path, "rb") as fh:
        number = 0
        while True:
            raw = fh.readline(MAX_ROW_BYTES + 1)
            if not raw:
                break
            number += 1
            if len(raw) > MAX_ROW_BYTES and not raw.endswith(b"\n"):
                raise bad(
                    f"{name} line {number} is longer than {MAX_ROW_BYTES:,} bytes; split it into smaller rows",
                    file=name,
                    line=number,
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise bad(
                    f"{name} line {number} is not valid UTF-8 (byte {exc.start + 1} of the line); "
                    "convert the file to UTF-8",
                    file=name,
                    line=number,
                ) from None
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise bad(
                    f"{name} line {number} is not valid JSON: {exc.msg} (column {exc.colno})", file=name, line=number
                ) from None
            seen = True
            yield value, f"{name} line {number}"
    if not seen:
        raise bad(f"{name} is empty: it has no rows", file=name)


# --- JSON ----------------------------------------------------------------------------------------------------
def _json_rows(path: Path, name: str) -> Iterator[Located]:
    """An array of objects (streamed element by element), or an object with a "data" array (read whole)."""
    with open(path, "rb") as fh:
        text = _Utf8Chunks(fh, name)
        first = text.skip_ws()
        if first is None:
            raise bad(f"{name} is empty: it has no rows", file=name)
        if first == "{":
            rest = text.read_all()
            try:
                doc = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise bad(
                    f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                    file=name,
                    line=exc.lineno,
                ) from None
            data = doc.get("data") if isinstance(doc, dict) else None
            if not isinstance(data, list):
                raise bad(
                    f'{name}: a JSON object must hold the rows as a list under "data"; '
                    f"found keys {', '.join(map(repr, list(doc)[:10])) or 'none'}",
                    file=name,
                )
            if not data:
                raise bad(f'{name} is empty: "data" has no rows', file=name)
            for i, value in enumerate(data):
                yield value, f"{name} element {i + 1}"
            return
        if first != "[":
            raise bad(f'{name}: expected a JSON array of objects or {{"data": [...]}}, found {first!r}', file=name)
        yield from _stream_array(text, name)


def _stream_array(text: _Utf8Chunks, name: str) -> Iterator[Located]:
    decoder = json.JSONDecoder()
    text.take(1)  # "["
    index = 0
    expect_value = True
    while True:
        char = text.skip_ws()
        if char is None:
            raise bad(f"{name}: the JSON array is not closed (after element {index})", file=name, line=text.line)
        if char == "]":
            if index == 0:
                raise bad(f"{name} is empty: the array has no rows", file=name)
            return
        if not expect_value:
            if char != ",":
                raise bad(
                    f"{name} line {text.line}: expected ',' or ']' after element {index}, found {char!r}",
                    file=name,
                    line=text.line,
                )
            text.take(1)
            expect_value = True
            continue
        line = text.line
        while True:
            try:
                value, end = decoder.raw_decode(text.buffer, text.pos)
                break
            except json.JSONDecodeError as exc:
                if not text.more():  # the whole element is there: it really is malformed
                    where = line + text.buffer.count("\n", text.pos, exc.pos)
                    raise bad(
                        f"{name} line {where}: element {index + 1} is not valid JSON: {exc.msg}", file=name, line=where
                    ) from None
            if len(text.buffer) - text.pos > MAX_ROW_BYTES:
                raise bad(f"{name}: element {index + 1} is larger than {MAX_ROW_BYTES:,} bytes", file=name)
        text.take(end - text.pos)
        index += 1
        expect_value = False
        yield value, f"{name} element {index} (line {line})"


class _Utf8Chunks:
    """A growing text window over a binary file, decoded strictly as UTF-8 and tracking line numbers."""

    def __init__(self, fh: BinaryIO, name: str) -> None:
        self.fh = fh
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self.buffer = ""
        self.pos = 0
        self.line = 1
        self.offset = 0  # bytes read so far
        self.eof = False

    def more(self, size: int = 1 << 20) -> bool:
        if self.eof:
            return False
        raw = self.fh.read(size)
        try:
            chunk = self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise bad(
                f"{self.name} is not valid UTF-8 (near byte {self.offset + exc.start + 1}); convert the file to UTF-8",
                file=self.name,
            ) from None
        self.offset += len(raw)
        if not raw:
            self.eof = True
        if self.pos > (1 << 20):  # drop what was consumed
            self.buffer, self.pos = self.buffer[self.pos :], 0
        self.buffer += chunk
        return True

    def skip_ws(self) -> str | None:
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in " \t\r\n\ufeff":
                if self.buffer[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.more():
                return None

    def take(self, n: int) -> None:
        self.line += self.buffer.count("\n", self.pos, self.pos + n)
        self.pos += n

    def read_all(self) -> str:
        while self.more(16 << 20):
            pass
        return self.buffer[self.pos :]


# --- CSV -----------------------------------------------------------------------------------------------------
def _csv_rows(path: Path, name: str) -> Iterator[Located]:
    csv.field_size_limit(MAX_ROW_BYTES)
    with open(path, encoding="utf-8", errors="strict", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if header is None:
                raise bad(f"{name} is empty: it has no header and no rows", file=name)
            header = [h.lstrip("\ufeff") if i == 0 else h for i, h in enumerate(header)]
            duplicates = sorted({h for h in header if header.count(h) > 1})
            if duplicates:
                raise bad(f"{name}: the header names {', '.join(map(repr, duplicates))} more than once", file=name)
            seen = False
            for values in reader:
                if not values:
                    continue
                line = reader.line_num
                if len(values) != len(header):
                    raise bad(
                        f"{name} line {line} has {len(values)} fields, the header has {len(header)}",
                        file=name,
                        line=line,
                    )
                seen = True
                yield dict(zip(header, values, strict=True)), f"{name} line {line}"
        except UnicodeDecodeError as exc:
            raise bad(
                f"{name} is not valid UTF-8 (near line {reader.line_num + 1}, byte {exc.start + 1} of the chunk read); "
                "convert the file to UTF-8",
                file=name,
                line=reader.line_num + 1,
            ) from None
        except csv.Error as exc:
            raise bad(f"{name} line {reader.line_num}: {exc}", file=name, line=reader.line_num) from None
    if not seen:
        raise bad(f"{name} is empty: it has a header but no rows", file=name)


# --- text files ----------------------------------------------------------------------------------------------
def _text_file_rows(path: Path, name: str) -> Iterator[Located]:
    size = path.stat().st_size
    if size > MAX_ROW_BYTES:
        raise bad(f"{name} is larger than {MAX_ROW_BYTES:,} bytes; split it into smaller files", file=name)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise bad(f"{name} line {line} is not valid UTF-8; convert the file to UTF-8", file=name, line=line) from None
    yield {"text": text, "source": name}, name


# --- Parquet -------------------------------------------------------------------------------------------------
def _parquet_source(files: list[Path], root: Path, wanted: DatasetKind | None, columns: ColumnMap) -> Source:
    schemas: list[pa.Schema] = []
    for file in files:
        try:
            schemas.append(pq.read_schema(file))
        except (pa.ArrowException, OSError) as exc:
            raise bad(f"{_rel(file, root)} is not a readable Parquet file: {exc}", file=_rel(file, root)) from None
    renames = columns.renames()
    extra_types: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            target = renames.get(f.name, f.name)
            if target not in ("text", "prompt", "completion", "messages") and target not in extra_types:
                extra_types[target] = f.type

    def rows() -> Iterator[Located]:
        for file in files:
            name = _rel(file, root)
            try:
                parquet = pq.ParquetFile(file)
                number = 0
                for batch in parquet.iter_batches(batch_size=PARQUET_READ_ROWS):
                    for row in batch.to_pylist():
                        number += 1
                        yield row, f"{name} row {number}"
            except (pa.ArrowException, OSError) as exc:
                raise bad(f"{name} is not a readable Parquet file: {exc}", file=name) from None
            if number == 0:
                raise bad(f"{name} is empty: it has no rows", file=name)

    return _row_source(rows(), "parquet", [_rel(f, root) for f in files], wanted, columns, extra_types=extra_types)


# --- rows → validated batches --------------------------------------------------------------------------------
def detect_kind(names: Iterable[str]) -> DatasetKind | None:
    present = set(names)
    if "messages" in present:
        return DatasetKind.chat
    if {"prompt", "completion"} <= present:
        return DatasetKind.prompt_completion
    if "text" in present:
        return DatasetKind.text
    return None


def _no_shape(found: Iterable[str], where: str) -> InvalidInput:
    cols = ", ".join(repr(c) for c in list(found)[:30]) or "none"
    return bad(
        f"{where}: no accepted columns (found {cols}); a dataset needs {SHAPES}. "
        "Name the source column with --text-column, --prompt-column/--completion-column or --messages-column",
        columns=list(found)[:30],
    )


def _row_source(
    rows: Iterator[Located],
    fmt: str,
    files: list[str],
    wanted: DatasetKind | None,
    columns: ColumnMap,
    *,
    extra_types: dict[str, pa.DataType],
) -> Source:
    renames = columns.renames()
    normalized = (_rename(row, where, renames) for row, where in rows)
    first_batch: list[tuple[Row, str]] = []
    size = 0
    for row, where in normalized:
        first_batch.append((row, where))
        size += _approx_size(row)
        if len(first_batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            break
    if not first_batch:
        raise bad(f"{', '.join(files[:3])} has no rows")
    first_row, first_where = first_batch[0]
    kind = wanted or detect_kind(first_row)
    if kind is None:
        raise _no_shape(first_row, first_where)
    required = text_columns(kind)
    extras: list[str] = []
    for row, _ in first_batch:
        for key in row:
            if key not in required and key not in extras:
                extras.append(key)
    types = {name: _extra_type(name, [r.get(name) for r, _ in first_batch], extra_types.get(name)) for name in extras}
    schema = pa.schema([*required_schema(kind), *(pa.field(n, types[n]) for n in extras)])
    builder = _BatchBuilder(kind, schema, extras, types, explicit=wanted is not None)

    def batches() -> Iterator[pa.RecordBatch]:
        yield builder.build(first_batch)
        pending: list[tuple[Row, str]] = []
        pending_size = 0
        for row, where in normalized:
            pending.append((row, where))
            pending_size += _approx_size(row)
            if len(pending) >= BATCH_ROWS or pending_size >= BATCH_BYTES:
                yield builder.build(pending)
                pending, pending_size = [], 0
        if pending:
            yield builder.build(pending)

    return Source(kind=kind, schema=schema, batches=batches(), format=fmt, files=files)


def _rename(row: Any, where: str, renames: dict[str, str]) -> tuple[Row, str]:
    if not isinstance(row, dict):
        raise bad(f"{where}: a row must be an object with named columns, not {type(row).__name__}")
    if renames:
        for src, dst in renames.items():
            if src in row:
                if dst in row:
                    raise bad(f"{where}: has both {src!r} and {dst!r}; {src!r} was to be used as {dst!r}")
                row[dst] = row.pop(src)
    return row, where


def _approx_size(row: Row) -> int:
    return sum(len(v) if isinstance(v, str) else 16 for v in row.values()) + 16


def _extra_type(name: str, values: list[Any], declared: pa.DataType | None) -> pa.DataType:
    """Type of a kept column: Parquet's own scalar type, else inferred from the first batch's values."""
    if declared is not None and not _nested(declared) and not pa.types.is_null(declared):
        return declared
    kinds = {type(v) for v in values if v is not None}
    if not kinds or kinds & {dict, list} or declared is not None:
        return pa.string()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _nested(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
        or pa.types.is_fixed_size_list(t)
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class _BatchBuilder:
    """Validates rows against the kind decided by the first row and turns them into record batches."""

    def __init__(
        self,
        kind: DatasetKind,
        schema: pa.Schema,
        extras: list[str],
        types: dict[str, pa.DataType],
        *,
        explicit: bool,
    ) -> None:
        self.kind = kind
        self.explicit = explicit  # the kind was asked for, not read from the first row
        self.schema = schema
        self.required = text_columns(kind)
        self.extras = extras
        self.known = set(self.required) | set(extras)
        self.types = types

    def build(self, rows: list[tuple[Row, str]]) -> pa.RecordBatch:
        columns: dict[str, list[Any]] = {name: [] for name in (*self.required, *self.extras)}
        for row, where in rows:
            self._check(row, where)
            for name in self.required:
                value = row[name]
                columns[name].append(self._messages(value, where) if name == "messages" else value)
            for name in self.extras:
                columns[name].append(self._extra(name, row.get(name), where))
        arrays = []
        for f in self.schema:
            try:
                arrays.append(pa.array(columns[f.name], type=f.type))
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
                raise bad(
                    f"column {f.name!r} cannot be stored as {f.type} (rows {rows[0][1]} to {rows[-1][1]}): {exc}",
                    column=f.name,
                ) from None
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _check(self, row: Row, where: str) -> None:
        missing = [c for c in self.required if c not in row]
        if missing:
            other = detect_kind(row)
            if other is not None and other != self.kind and not self.explicit:
                raise bad(
                    f"{where}: mixed kinds: this row is {other.value} ({', '.join(text_columns(other))}) but the "
                    f"dataset is {self.kind.value} ({', '.join(self.required)}), decided by its first row; "
                    "import each kind as its own dataset",
                    row=where,
                )
            looks = f" (this row looks like {other.value})" if other is not None and other != self.kind else ""
            raise bad(
                f"{where}: missing column {', '.join(map(repr, missing))}; {self.kind.value} rows need "
                f"{', '.join(map(repr, self.required))}{looks}",
                row=where,
            )
        unknown = [k for k in row if k not in self.known]
        if unknown:
            raise bad(
                f"{where}: column {', '.join(map(repr, unknown[:5]))} does not appear in the first rows; "
                "give every row the same columns (null where there is no value)",
                row=where,
            )
        for name in self.required:
            if name != "messages" and not isinstance(row[name], str):
                got = "null" if row[name] is None else type(row[name]).__name__
                raise bad(f"{where}: {name!r} must be a string, got {got}", row=where, column=name)

    def _messages(self, value: Any, where: str) -> list[dict[str, str]]:
        if isinstance(value, str):  # CSV cells and JSON-encoded columns
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise bad(f"{where}: 'messages' is text but not JSON: {exc.msg}", row=where) from None
        if not isinstance(value, list):
            got = "null" if value is None else type(value).__name__
            raise bad(f"{where}: 'messages' must be a list of {{role, content}} objects, got {got}", row=where)
        if not value:
            raise bad(f"{where}: 'messages' is empty; a chat row needs at least one message", row=where)
        out = []
        for i, message in enumerate(value, 1):
            if not isinstance(message, dict):
                raise bad(f"{where}: message {i} must be an object with role and content", row=where)
            for key in ("role", "content"):
                if not isinstance(message.get(key), str):
                    got = "missing" if key not in message else type(message[key]).__name__
                    raise bad(f"{where}: message {i} needs a string {key!r} ({got})", row=where)
            others = sorted(set(message) - {"role", "content"})
            if others:
                raise bad(
                    f"{where}: message {i} has keys {', '.join(map(repr, others))} besides role and content; "
                    "move them to a column of their own",
                    row=where,
                )
            out.append({"role": message["role"], "content": message["content"]})
        return out

    def _extra(self, name: str, value: Any, where: str) -> Any:
        if value is None:
            return None
        target = self.types[name]
        if pa.types.is_string(target) or pa.types.is_large_string(target):
            return value if isinstance(value, str) else _json_text(value)
        if pa.types.is_floating(target) and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if pa.types.is_integer(target) and isinstance(value, int) and not isinstance(value, bool):
            return value
        if pa.types.is_boolean(target) and isinstance(value, bool):
            return value
        if not (pa.types.is_integer(target) or pa.types.is_floating(target) or pa.types.is_boolean(target)):
            return value  # Parquet's own types (timestamps, decimals, binary …) come back as they went in
        raise bad(
            f"{where}: column {name!r} holds {type(value).__name__} here but {target} in the first rows; "
            "give the column one type (or quote it as text)",
            row=where,
            column=name,
        )


__all__ = ["MESSAGE_TYPE", "ColumnMap", "Source", "detect_kind", "open_parquet_source", "open_source"]
