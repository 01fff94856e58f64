"""Builders for safetensors files, valid and deliberately broken, shared by the registry's tests.

``BROKEN`` is a corpus of small files that each break exactly one rule of
``llmops.registry.safetensors_file``; importer tests can parametrise over it to check that a broken file
is refused before anything is stored. Everything is built in memory from plain bytes, so a case says
precisely which bytes are wrong.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from llmops.registry.safetensors_file import DTYPE_SIZES


def entry(dtype: str, shape: Sequence[Any], begin: Any, end: Any) -> dict[str, Any]:
    """A header entry, with whatever (possibly invalid) values the caller passes."""
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}


def build(
    header: Mapping[str, Any] | str | bytes,
    data: bytes = b"",
    *,
    align: int = 8,
    header_len: int | None = None,
) -> bytes:
    """A file from a header (a mapping dumped as JSON, or raw text or bytes) and a data section.

    The header is padded with spaces to a multiple of ``align`` as the safetensors writer does.
    ``header_len`` overrides the length prefix, to forge a claim the header does not back.
    """
    if isinstance(header, bytes):
        raw = header
    elif isinstance(header, str):
        raw = header.encode("utf-8")
    else:
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if align > 1:
        raw += b" " * (-(8 + len(raw)) % align)
    claimed = len(raw) if header_len is None else header_len
    return struct.pack("<Q", claimed) + raw + data


def pack(
    tensors: Sequence[tuple[str, str, Sequence[int]]],
    *,
    metadata: Mapping[str, str] | None = None,
    order: Sequence[int] | None = None,
    align: int = 8,
) -> tuple[bytes, dict[str, bytes]]:
    """A valid file holding ``tensors`` (name, dtype, shape), and each tensor's bytes by name.

    ``order`` is the order the tensors' bytes appear in the data section (indices into ``tensors``),
    independent of the order of the JSON entries. Bytes are a deterministic pattern per tensor, so
    reading the wrong range shows up as different bytes.
    """
    indices = list(order) if order is not None else list(range(len(tensors)))
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    blobs: dict[str, bytes] = {}
    ranges: dict[str, tuple[int, int]] = {}
    cursor = 0
    for index in indices:
        name, dtype, shape = tensors[index]
        count = 1
        for dim in shape:
            count *= dim
        size = count * DTYPE_SIZES[dtype]
        blobs[name] = bytes((index * 31 + i * 7 + 1) % 256 for i in range(size))
        ranges[name] = (cursor, cursor + size)
        cursor += size
    for name, dtype, shape in tensors:
        header[name] = entry(dtype, shape, *ranges[name])
    data = b"".join(blobs[tensors[i][0]] for i in indices)
    return build(header, data, align=align), blobs


def _base(**entries: dict[str, Any]) -> dict[str, Any]:
    return dict(entries)


_TWO = _base(a=entry("F32", [2], 0, 8), b=entry("U8", [4], 8, 12))
_TWO_FILE = build(_TWO, bytes(range(12)))
_TWO_RAW = json.dumps(_TWO, separators=(",", ":"))


def _with(name: str, value: Any) -> bytes:
    """``_TWO_FILE`` with entry ``a`` (or ``__metadata__``) replaced by ``value``."""
    header = dict(_TWO)
    header[name] = value
    return build(header, bytes(range(12)))


def _a(**fields: Any) -> bytes:
    """``_TWO_FILE`` with some fields of entry ``a`` replaced."""
    return _with("a", {**_TWO["a"], **fields})


BROKEN: dict[str, tuple[str, bytes]] = {
    # case id: (rule, file bytes)
    "empty_file": ("too_small", b""),
    "seven_bytes": ("too_small", b"\x02\x00\x00\x00\x00\x00\x00"),
    "header_past_end": ("header_past_end", build(_TWO, bytes(range(12)), header_len=1000)),
    "header_past_end_by_one": ("header_past_end", build("{}", align=1, header_len=3)),
    "header_2gb_claim": ("header_too_large", build("{}", header_len=2**31)),
    "header_u64_max_claim": ("header_too_large", build("{}", header_len=2**64 - 1)),
    "truncated_in_data": ("truncated", _TWO_FILE[:-6]),
    "truncated_after_header": ("truncated", _TWO_FILE[: len(_TWO_FILE) - 12]),
    "overlap": ("overlap", build(_base(a=entry("F32", [2], 0, 8), b=entry("F32", [2], 4, 12)), bytes(12))),
    "same_range_twice": ("overlap", build(_base(a=entry("U8", [4], 0, 4), b=entry("U8", [4], 0, 4)), bytes(4))),
    "zero_size_inside_other": (
        "overlap",
        build(_base(a=entry("U8", [4], 0, 4), z=entry("U8", [0], 2, 2)), bytes(4)),
    ),
    "gap_between": ("gap", build(_base(a=entry("U8", [4], 0, 4), b=entry("U8", [4], 8, 12)), bytes(12))),
    "gap_at_start": ("gap", build(_base(a=entry("U8", [4], 4, 8)), bytes(8))),
    "trailing_bytes": ("trailing_bytes", _TWO_FILE + b"\x00"),
    "no_tensors_but_data": ("trailing_bytes", build("{}", b"\x00" * 8)),
    "unknown_dtype": ("unknown_dtype", _a(dtype="F128")),
    "lowercase_dtype": ("unknown_dtype", _a(dtype="f32")),
    "dtype_not_string": ("unknown_dtype", _a(dtype=4)),
    "dtype_f4": ("unsupported_dtype", _a(dtype="F4", shape=[16])),
    "dtype_f6": ("unsupported_dtype", build({"a": entry("F6_E2M3", [8], 0, 6)}, bytes(6))),
    "wrong_byte_length": ("size_mismatch", _a(data_offsets=[0, 4])),
    "wrong_dtype_for_length": ("size_mismatch", _a(dtype="F16")),
    "shape_negative": ("bad_shape", _a(shape=[-2])),
    "shape_float": ("bad_shape", _a(shape=[2.0])),
    "shape_bool": ("bad_shape", _a(shape=[True, True])),
    "shape_string": ("bad_shape", _a(shape="2")),
    "shape_nested": ("bad_shape", _a(shape=[[2]])),
    "shape_null": ("bad_shape", _a(shape=None)),
    "shape_past_u64": ("bad_shape", _a(shape=[0, 2**64])),
    "shape_product_overflows": ("bad_shape", _a(shape=[2**40, 2**40, 0], data_offsets=[0, 0])),
    "offsets_three": ("bad_offsets", _a(data_offsets=[0, 4, 8])),
    "offsets_one": ("bad_offsets", _a(data_offsets=[0])),
    "offsets_reversed": ("bad_offsets", _a(data_offsets=[8, 0])),
    "offsets_strings": ("bad_offsets", _a(data_offsets=["0", "8"])),
    "offsets_negative": ("bad_offsets", _a(data_offsets=[-8, 0])),
    "offsets_bool": ("bad_offsets", _a(data_offsets=[False, True])),
    "offsets_float": ("bad_offsets", _a(data_offsets=[0.0, 8.0])),
    "offsets_object": ("bad_offsets", _a(data_offsets={"begin": 0, "end": 8})),
    "header_not_utf8": ("header_not_utf8", build(b'{"\xff\xfe":{}}')),
    "header_utf8_surrogate_bytes": ("header_not_utf8", build(b'{"\xed\xa0\x80":{}}')),
    "header_not_json": ("header_not_json", build('{"a": {"dtype": ')),
    "header_empty": ("header_not_json", build(b"", align=1)),
    "header_trailing_junk": ("header_not_json", build("{} x")),
    "header_trailing_nul": ("header_not_json", build(b"{}\x00")),
    "header_nan": ("header_not_json", build('{"__metadata__": {"a": NaN}}')),
    "header_single_quotes": ("header_not_json", build("{'a': 1}")),
    "header_deep_nesting": ("header_not_json", build("[" * 200_000 + "]" * 200_000)),
    "header_array": ("header_not_object", build("[]")),
    "header_string": ("header_not_object", build('"tensors"')),
    "header_null": ("header_not_object", build("null")),
    "metadata_int_value": ("bad_metadata", _with("__metadata__", {"format": "pt", "step": 3})),
    "metadata_array": ("bad_metadata", _with("__metadata__", ["format", "pt"])),
    "metadata_null": ("bad_metadata", _with("__metadata__", None)),
    "metadata_nested": ("bad_metadata", _with("__metadata__", {"format": {"x": "pt"}})),
    "metadata_duplicate_key": (
        "bad_metadata",
        build('{"__metadata__":{"k":"1","k":"2"},' + _TWO_RAW[1:], bytes(range(12))),
    ),
    "duplicate_tensor": (
        "duplicate_name",
        build('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},' + _TWO_RAW[1:], bytes(range(12))),
    ),
    "duplicate_metadata": ("duplicate_name", build('{"__metadata__":{},"__metadata__":{}}')),
    "entry_extra_key": ("bad_entry", _a(offsets=[0, 8])),
    "entry_missing_key": ("bad_entry", _with("a", {"dtype": "F32", "shape": [2]})),
    "entry_array": ("bad_entry", _with("a", ["F32", [2], [0, 8]])),
    "entry_string": ("bad_entry", _with("a", "F32")),
    "entry_duplicate_key": (
        "bad_entry",
        build(
            '{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            '"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}',
            bytes(range(12)),
        ),
    ),
    "name_with_nul": ("bad_name", build(_base(**{"a\x00b": entry("U8", [4], 0, 4)}), bytes(4))),
    "name_lone_surrogate": (
        "bad_name",
        build('{"a\\ud800":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', bytes(4)),
    ),
}
"""Broken files by case id, each as (the rule it breaks, its bytes)."""
