"""The safetensors header parser: real files from the reference writers, a broken corpus, and properties.

The parser guards the registry's import: everything it accepts is stored tensor by tensor, so it must
agree with the reference reader on valid files, name the broken rule on invalid ones, and never read
tensor data or raise anything but ``InvalidModel`` on hostile input.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.errors import InvalidInput, InvalidModel
from llmops.registry.safetensors_file import (
    DTYPE_SIZES,
    MAX_HEADER_BYTES,
    RULES,
    SUB_BYTE_DTYPE_BITS,
    SafetensorsLayout,
    TensorSpec,
    read_layout,
    read_layout_path,
)
from tests.registry.corpus import BROKEN, build, entry, pack


class RecordingIO(io.BytesIO):
    """An in-memory file that records the size of every read, to prove what the parser touched."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.reads.append(len(data))
        return data


class TrickleIO(io.RawIOBase):
    """A non-seekable stream that returns at most 3 bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._pos : self._pos + min(3, len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def parse(data: bytes, name: str = "model.safetensors") -> SafetensorsLayout:
    return read_layout(io.BytesIO(data), file_size=len(data), name=name)


def rule_of(data: bytes, name: str = "model.safetensors") -> str:
    with pytest.raises(InvalidModel) as caught:
        parse(data, name)
    details = caught.value.details
    assert isinstance(details, dict)
    assert details["file"] == name
    return str(details["rule"])


def torch_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's raw little-endian bytes, whatever its dtype (bf16 and float8 have no numpy twin)."""
    flat = tensor.contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return bytes(flat.view(torch.uint8).numpy().tobytes())


def reference_read(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The reference reader (safetensors' Rust core, framework-free): (name, {dtype, shape, data})."""
    result: list[tuple[str, dict[str, Any]]] = safetensors.deserialize(data)  # type: ignore[no-untyped-call]
    return result


def assert_consistent(layout: SafetensorsLayout, data: bytes) -> None:
    """Everything a caller relies on, checked independently and against the reference reader."""
    assert layout.file_size == len(data)
    assert layout.header_bytes == data[: layout.data_start]
    assert layout.data_start == 8 + struct.unpack("<Q", data[:8])[0]
    cursor = layout.data_start
    for spec in layout.tensors:
        assert spec.begin == cursor
        assert spec.nbytes == int(np.prod(spec.shape, dtype=object)) * DTYPE_SIZES[spec.dtype]
        assert "\x00" not in spec.name
        cursor = spec.end
    assert cursor == len(data)
    names = [spec.name for spec in layout.tensors]
    assert len(set(names)) == len(names)
    reference = {name: (info["dtype"], list(info["shape"]), info["data"]) for name, info in reference_read(data)}
    ours = {spec.name: (spec.dtype, list(spec.shape), data[spec.begin : spec.end]) for spec in layout.tensors}
    assert ours == reference


# --- valid files from the reference writers ---------------------------------------------------------

TORCH_TENSORS: dict[str, torch.Tensor] = {
    "model.embed.weight": torch.randn(5, 3),
    "layers.0.bf16": torch.randn(2, 3, 4).to(torch.bfloat16),
    "layers.0.f16": torch.randn(7).to(torch.float16),
    "layers.0.f64": torch.randn(2, 2, dtype=torch.float64),
    "i8": torch.arange(-5, 6, dtype=torch.int8),
    "u8": torch.arange(0, 200, 7, dtype=torch.uint8),
    "i16": torch.arange(-9, 9, dtype=torch.int16).reshape(3, 6),
    "i32": torch.arange(10, dtype=torch.int32),
    "i64": torch.arange(3, dtype=torch.int64),
    "u16": torch.arange(5, dtype=torch.int32).to(torch.uint16),
    "u32": torch.arange(5, dtype=torch.int64).to(torch.uint32),
    "u64": torch.arange(5, dtype=torch.int64).to(torch.uint64),
    "mask": torch.tensor([[True, False, True], [False, False, True]]),
    "f8_e4m3": torch.randn(6).to(torch.float8_e4m3fn),
    "f8_e5m2": torch.randn(6).to(torch.float8_e5m2),
    "c64": torch.randn(3, dtype=torch.complex64),
    "scalar": torch.tensor(3.5),
    "empty": torch.zeros(0, 4),
    "empty_bf16": torch.zeros(3, 0, dtype=torch.bfloat16),
}
TORCH_DTYPES = {
    "model.embed.weight": "F32",
    "layers.0.bf16": "BF16",
    "layers.0.f16": "F16",
    "layers.0.f64": "F64",
    "i8": "I8",
    "u8": "U8",
    "i16": "I16",
    "i32": "I32",
    "i64": "I64",
    "u16": "U16",
    "u32": "U32",
    "u64": "U64",
    "mask": "BOOL",
    "f8_e4m3": "F8_E4M3",
    "f8_e5m2": "F8_E5M2",
    "c64": "C64",
    "scalar": "F32",
    "empty": "F32",
    "empty_bf16": "BF16",
}


def test_torch_file_parses_to_the_right_specs(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(TORCH_TENSORS, str(path), metadata={"format": "pt", "note": "ünïcode"})
    data = path.read_bytes()

    layout = read_layout_path(path)

    assert layout.name == "model.safetensors"
    assert layout.file_size == len(data)
    assert layout.metadata == {"format": "pt", "note": "ünïcode"}
    assert layout.header_bytes == data[: layout.data_start]
    assert [s.begin for s in layout.tensors] == sorted(s.begin for s in layout.tensors)
    by_name = {spec.name: spec for spec in layout.tensors}
    assert by_name.keys() == TORCH_TENSORS.keys()
    for name, tensor in TORCH_TENSORS.items():
        spec = by_name[name]
        assert spec.dtype == TORCH_DTYPES[name]
        assert spec.shape == tuple(tensor.shape)
        assert spec.nbytes == tensor.numel() * tensor.element_size()
        assert data[spec.begin : spec.end] == torch_bytes(tensor), name
    assert by_name["empty"].nbytes == 0 and by_name["scalar"].shape == ()
    assert_consistent(layout, data)


def test_numpy_file_and_custom_name(tmp_path: Path) -> None:
    arrays = {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.array([True, False]),
        "h": np.array([1.5, -2.0], dtype=np.float16),
        "q": np.array([-128, 0, 127], dtype=np.int8),
        "z": np.zeros((0,), dtype=np.int64),
    }
    path = tmp_path / "blob-on-disk"
    safetensors.numpy.save_file(arrays, str(path), metadata={"k": "v"})
    data = path.read_bytes()

    layout = read_layout_path(path, name="shard-00001.safetensors")

    assert layout.name == "shard-00001.safetensors"
    assert layout.metadata == {"k": "v"}
    for spec in layout.tensors:
        array = arrays[spec.name]
        assert spec.shape == array.shape
        assert data[spec.begin : spec.end] == array.tobytes()
    assert_consistent(layout, data)


def test_file_without_tensors(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    safetensors.torch.save_file({}, str(path))
    layout = read_layout_path(path)
    assert layout.tensors == ()
    assert layout.metadata is None
    assert layout.data_start == layout.file_size == path.stat().st_size
    assert layout.header_bytes == path.read_bytes()


def test_only_zero_size_tensors() -> None:
    data = build({"a": entry("F32", [0, 3], 0, 0), "b": entry("BOOL", [0], 0, 0), "__metadata__": {}})
    layout = parse(data)
    assert [(s.name, s.nbytes, s.begin) for s in layout.tensors] == [("a", 0, len(data)), ("b", 0, len(data))]
    assert layout.metadata == {}
    assert_consistent(layout, data)


def test_zero_size_tensor_at_a_boundary_keeps_contiguity() -> None:
    data = build(
        {"x": entry("U8", [4], 0, 4), "z": entry("I64", [2, 0], 4, 4), "y": entry("U8", [2], 4, 6)},
        b"abcdef",
    )
    layout = parse(data)
    assert [s.name for s in layout.tensors] == ["x", "z", "y"]
    assert_consistent(layout, data)


def test_every_whole_byte_dtype_and_exotic_names() -> None:
    tensors = [(f"t.{dtype}.ü ✓/\t", dtype, [2, 3]) for dtype in DTYPE_SIZES]
    tensors.append(("", "U8", [1]))
    data, blobs = pack(tensors, order=list(reversed(range(len(tensors)))))
    layout = parse(data)
    assert {s.name: data[s.begin : s.end] for s in layout.tensors} == blobs
    assert_consistent(layout, data)


def test_dtype_table_matches_the_reference() -> None:
    """Every dtype the installed safetensors accepts is in our table or refused as sub-byte, with its size."""
    candidates = set(DTYPE_SIZES) | set(SUB_BYTE_DTYPE_BITS) | {"F8_E4M3FN", "F128", "C128", "U4", "I4", "F6"}
    accepted = set()
    for dtype in sorted(candidates):
        bits = DTYPE_SIZES[dtype] * 8 if dtype in DTYPE_SIZES else SUB_BYTE_DTYPE_BITS.get(dtype, 8)
        data = build({"t": entry(dtype, [8], 0, bits)}, bytes(bits))
        try:
            reference_read(data)
        except safetensors.SafetensorError:
            continue
        accepted.add(dtype)
    assert accepted == set(DTYPE_SIZES) | set(SUB_BYTE_DTYPE_BITS)
    assert {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16", "BF16"} <= DTYPE_SIZES.keys()
    assert {"I32", "U32", "F32", "I64", "U64", "F64"} <= DTYPE_SIZES.keys()


def test_tiny_transformers_model(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=64,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path, safe_serialization=True)
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()

    layout = read_layout_path(path)

    with safetensors.safe_open(str(path), framework="pt") as reference:
        names = set(reference.keys())
        assert layout.metadata == reference.metadata()
        assert len(layout.tensors) == len(names) > 2 * 9
        assert {s.name for s in layout.tensors} == names
        for spec in layout.tensors:
            tensor = reference.get_tensor(spec.name)
            assert spec.shape == tuple(tensor.shape)
            assert data[spec.begin : spec.end] == torch_bytes(tensor)
    assert "model.layers.1.self_attn.q_proj.weight" in names
    assert_consistent(layout, data)


# --- reading discipline --------------------------------------------------------------------------------


def test_reads_only_the_prefix_and_the_header() -> None:
    data, _ = pack([("a", "F32", [1000]), ("b", "BF16", [10, 10])])
    fh = RecordingIO(data)
    layout = read_layout(fh, file_size=len(data), name="m")
    assert fh.reads == [8, layout.data_start - 8]
    assert fh.tell() == layout.data_start


def test_2gb_header_claim_is_refused_after_reading_eight_bytes() -> None:
    data = build("{}", header_len=2**31)
    fh = RecordingIO(data)
    with pytest.raises(InvalidModel) as caught:
        # A file_size that would fit the claim, so only the size limit can refuse it.
        read_layout(fh, file_size=2**40, name="huge.safetensors")
    assert caught.value.details == {"file": "huge.safetensors", "rule": "header_too_large", "header_len": 2**31}
    assert fh.reads == [8]


def test_header_at_the_size_limit_is_not_refused_for_size() -> None:
    # A claim of exactly MAX_HEADER_BYTES passes the limit and then fails only because the bytes are missing.
    data = build("{}", header_len=MAX_HEADER_BYTES)
    fh = RecordingIO(data)
    with pytest.raises(InvalidModel) as caught:
        read_layout(fh, file_size=8 + MAX_HEADER_BYTES, name="m")
    assert caught.value.details["rule"] == "header_past_end"
    assert "ended after" in caught.value.message


def test_rewinds_a_seekable_file_and_accepts_a_trickling_stream() -> None:
    data, blobs = pack([("a", "U8", [5]), ("b", "I32", [3])], metadata={"x": "y"})
    fh = io.BytesIO(data)
    fh.seek(17)
    assert read_layout(fh, file_size=len(data), name="m") == parse(data, "m")

    layout = read_layout(io.BufferedReader(TrickleIO(data), buffer_size=4), file_size=len(data), name="m")
    assert layout == parse(data, "m")
    assert {s.name: data[s.begin : s.end] for s in layout.tensors} == blobs


def test_a_file_shorter_than_its_stated_size() -> None:
    data, _ = pack([("a", "U8", [5])])
    with pytest.raises(InvalidModel) as caught:
        read_layout(io.BytesIO(data[:20]), file_size=len(data), name="m")
    assert caught.value.details["rule"] == "header_past_end"
    with pytest.raises(InvalidModel) as caught:
        read_layout(io.BytesIO(data[:5]), file_size=len(data), name="m")
    assert caught.value.details["rule"] == "too_small"


def test_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidModel) as caught:
        read_layout_path(tmp_path, name="dir.safetensors")
    assert caught.value.details == {"file": "dir.safetensors", "rule": "not_a_file"}
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InvalidModel):
        read_layout_path(fifo)  # refused without opening: opening a FIFO would block forever
    with pytest.raises(FileNotFoundError):
        read_layout_path(tmp_path / "missing.safetensors")


# --- the broken corpus ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_is_refused_with_its_rule(case: str, tmp_path: Path) -> None:
    rule, data = BROKEN[case]
    assert rule in RULES
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(data)

    with pytest.raises(InvalidModel) as caught:
        read_layout_path(path, name=f"models/{case}.safetensors")

    error = caught.value
    assert isinstance(error, InvalidInput) and error.code == "invalid_model"
    assert error.details["rule"] == rule, error.message
    assert error.details["file"] == f"models/{case}.safetensors"
    assert f"models/{case}.safetensors" in error.message and f"({rule})" in error.message
    assert len(error.message) < 600


def test_broken_corpus_never_reads_past_the_header() -> None:
    for case, (_, data) in BROKEN.items():
        fh = RecordingIO(data)
        with pytest.raises(InvalidModel):
            read_layout(fh, file_size=len(data), name=case)
        claimed = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else 0
        allowed = 8 + claimed if claimed <= min(MAX_HEADER_BYTES, len(data) - 8) else 8
        assert sum(fh.reads) <= allowed, case


# Cases the reference reader (safetensors 0.8) accepts but the registry refuses on purpose.
STRICTER_THAN_REFERENCE = {
    "dtype_f4",  # sub-byte dtypes: refused until the platform consumes them
    "dtype_f6",
    "duplicate_tensor",  # the reference keeps one of the two silently
    "metadata_duplicate_key",
    "entry_extra_key",  # an unknown field may change meaning in a later format
    "entry_array",  # serde reads ["F32", [2], [0, 8]] as a positional entry; the format says object
    "metadata_null",
    "name_with_nul",  # NUL breaks paths, logs and C strings downstream
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_corpus_agrees_with_the_reference_reader(case: str) -> None:
    """Each broken case is either refused by the reference too, or listed as a deliberate strictness."""
    _, data = BROKEN[case]
    try:
        reference_read(data)
    except safetensors.SafetensorError:
        assert case not in STRICTER_THAN_REFERENCE
    else:
        assert case in STRICTER_THAN_REFERENCE


def test_error_messages_do_not_echo_huge_names() -> None:
    name = "x" * 1_000_000
    data = build({name: entry("U8", [4], 0, 3)}, bytes(3))
    with pytest.raises(InvalidModel) as caught:
        parse(data)
    assert caught.value.details["rule"] == "size_mismatch"
    assert len(caught.value.message) < 600
    assert len(caught.value.details["tensor"]) <= 120


def test_rule_ids_are_all_exercised() -> None:
    exercised = {rule for rule, _ in BROKEN.values()} | {"not_a_file"}
    assert exercised == RULES


def test_specs_are_frozen() -> None:
    spec = TensorSpec(name="a", dtype="F32", shape=(2,), begin=8, end=16)
    assert spec.nbytes == 8
    with pytest.raises(AttributeError):
        spec.begin = 0  # type: ignore[misc]


# --- properties ----------------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
_TENSOR = st.tuples(st.sampled_from(sorted(DTYPE_SIZES)), st.lists(st.integers(0, 4), max_size=3))


@st.composite
def valid_files(
    draw: st.DrawFn, min_tensors: int = 0
) -> tuple[bytes, list[tuple[str, str, list[int]]], dict[str, str] | None]:
    names = _TEXT.filter(lambda s: s != "__metadata__")
    by_name = draw(st.dictionaries(names, _TENSOR, min_size=min_tensors, max_size=6))
    tensors = [(name, dtype, shape) for name, (dtype, shape) in by_name.items()]
    order = draw(st.permutations(range(len(tensors))))
    metadata = draw(st.none() | st.dictionaries(_TEXT, _TEXT, max_size=3))
    align = draw(st.sampled_from([1, 8, 64]))
    data, _ = pack(tensors, metadata=metadata, order=order, align=align)
    return data, tensors, metadata


@settings(max_examples=300, deadline=None)
@given(valid_files())
def test_random_valid_layouts_round_trip(case: tuple[bytes, list[tuple[str, str, list[int]]], Any]) -> None:
    data, tensors, metadata = case
    layout = parse(data)
    assert layout.metadata == metadata
    assert {s.name: (s.dtype, list(s.shape)) for s in layout.tensors} == {n: (d, s) for n, d, s in tensors}
    assert_consistent(layout, data)


def _mutate(data: bytes, edits: Sequence[tuple[int, int, int]], fix_length: bool) -> bytes:
    """Apply (kind, position, byte) edits to the header region: 0 replaces, 1 deletes, 2 inserts."""
    header_len = struct.unpack("<Q", data[:8])[0]
    head, body = bytearray(data[: 8 + header_len]), data[8 + header_len :]
    for kind, position, value in edits:
        if kind == 0 or fix_length is False:
            head[position % len(head)] = value
        elif kind == 1 and len(head) > 8:
            del head[8 + position % (len(head) - 8)]
        else:
            head.insert(8 + position % (len(head) - 7), value)
    if fix_length:
        head[:8] = struct.pack("<Q", len(head) - 8)
    return bytes(head) + body


_EDITS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255) | st.sampled_from(list(b'{}[]",:0123 '))),
    min_size=1,
    max_size=6,
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_files(), _EDITS, st.booleans(), st.integers(-3, 3))
def test_mutated_headers_parse_consistently_or_raise_invalid_model(
    case: tuple[bytes, Any, Any], edits: list[tuple[int, int, int]], fix_length: bool, resize: int
) -> None:
    data = _mutate(case[0], edits, fix_length)
    data = data[:resize] if resize < 0 else data + b"\x00" * resize
    try:
        layout = parse(data)
    except InvalidModel as exc:
        assert exc.details["rule"] in RULES
        return
    # Anything accepted is a consistent layout that the reference reader reads identically.
    assert_consistent(layout, data)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
    | st.sampled_from([*DTYPE_SIZES, *SUB_BYTE_DTYPE_BITS]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def semantic_mutants(draw: st.DrawFn) -> bytes:
    """A valid file whose header is edited as JSON: nudged offsets and shapes, swapped dtypes, odd values.

    Byte mutations mostly break the JSON; these reach the layout rules (gap, overlap, sizes, entries).
    """
    data = draw(valid_files(min_tensors=2))[0]
    header_len = struct.unpack("<Q", data[:8])[0]
    header: dict[str, Any] = json.loads(data[8 : 8 + header_len])
    body = data[8 + header_len :]
    for _ in range(draw(st.integers(1, 3))):
        # Weighted towards nudges, which reach the layout rules; the order of the list is the shrink order.
        operation = draw(st.sampled_from(["shift"] * 3 + ["nudge"] * 3 + ["field", "drop", "entry", "new"]))
        if operation == "new":
            header[draw(_TEXT)] = draw(_JSON)
            continue
        key = draw(st.sampled_from(sorted(header)))
        target = header[key]
        if not isinstance(target, dict) or operation == "entry":
            header[key] = draw(_JSON)
            continue
        numeric = [f for f, v in target.items() if isinstance(v, list) and v and all(type(x) is int for x in v)]
        delta = draw(st.sampled_from([1, -1, 2, -2, 4, -4, 8]))
        if operation == "shift" and "data_offsets" in numeric:  # moves a tensor: gaps, overlaps, past the end
            target["data_offsets"] = [x + delta for x in target["data_offsets"]]
        elif operation in ("shift", "nudge") and numeric:
            field = draw(st.sampled_from(sorted(numeric)))
            nudged = list(target[field])
            nudged[draw(st.integers(0, len(nudged) - 1))] += delta
            target[field] = nudged
        elif operation == "drop" and target:
            del target[draw(st.sampled_from(sorted(target)))]
        else:
            target[draw(st.sampled_from([*sorted(target), "extra"]))] = draw(_JSON)
    resize = draw(st.sampled_from([0, 0, 0, 0, -1, 1, -4, 4]))
    body = body[: len(body) + resize] if resize < 0 else body + bytes(resize)
    return build(header, body, align=draw(st.sampled_from([1, 8])))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(semantic_mutants())
def test_edited_headers_parse_consistently_or_raise_invalid_model(data: bytes) -> None:
    try:
        layout = parse(data)
    except InvalidModel as exc:
        assert exc.details["rule"] in RULES
        return
    assert_consistent(layout, data)


def test_a_mutation_that_keeps_the_file_valid_still_parses() -> None:
    # The property above mostly sees refusals; this pins the accepting path on a hand-made mutation.
    data, _ = pack([("ab", "U8", [4])])
    swapped = data.replace(b'"ab"', b'"ba"')
    assert [s.name for s in parse(swapped).tensors] == ["ba"]
    assert_consistent(parse(swapped), swapped)


def test_json_header_is_read_as_written() -> None:
    text = json.dumps({"w": entry("F16", [3], 0, 6), "__metadata__": {"format": "pt"}}, indent=2)
    data = build(text, b"\x01" * 6)
    layout = parse(data)
    assert layout.header_bytes[8:].rstrip(b" ") == text.encode()
    assert layout.tensors == (TensorSpec("w", "F16", (3,), layout.data_start, layout.data_start + 6),)
