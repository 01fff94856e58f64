"""Read and validate the layout of a safetensors file from its header alone, trusting nothing in it.

The registry imports Hugging Face safetensors files and stores every tensor as its own blob. Before it
stores a byte it needs the file's layout: which tensor occupies which byte range, with which dtype and
shape, and proof that those ranges tile the data section exactly. Files may be hundreds of gigabytes, so
this module reads the 8-byte length prefix and the JSON header (two reads) and never touches tensor data.

Why our own parser rather than the ``safetensors`` package: ``safe_open`` validates a file but exposes
neither the byte ranges of the tensors nor which rule a broken file breaks (it raises one opaque
``SafetensorError``), and ``safetensors.deserialize`` reads the whole file into memory. The registry needs
a streaming layout with absolute byte ranges and rule-specific errors it can show a user. The rules below
follow the reference reader (safetensors 0.8) and are stricter wherever it is lenient, so every file
accepted here also loads with the reference library (the property tests check exactly that). The one
exception is the header cap: the reference refuses headers over 100,000,000 bytes, this module over
:data:`MAX_HEADER_BYTES` (100 MiB, 4.9 MB more); no real checkpoint comes near either.

Every failure raises :class:`llmops.errors.InvalidModel`; its message names the file and the rule, and
``details`` is ``{"file": name, "rule": rule_id, ...}``. The rule ids (also in :data:`RULES`):

- ``not_a_file``: (``read_layout_path`` only) the path is not a regular file
- ``too_small``: the file is shorter than the 8-byte length prefix
- ``header_too_large``: the length prefix claims more than :data:`MAX_HEADER_BYTES`
- ``header_past_end``: the header would run past the end of the file
- ``header_not_utf8``: the header is not valid UTF-8
- ``header_not_json``: the header is not JSON (NaN/Infinity, trailing junk and absurd nesting included)
- ``header_not_object``: the header is JSON but not an object
- ``duplicate_name``: a top-level key (tensor name or ``__metadata__``) appears twice
- ``bad_metadata``: ``__metadata__`` is not an object of string to string (or repeats a key)
- ``bad_name``: a tensor name contains NUL or an unpaired surrogate escape (``\\ud800``)
- ``bad_entry``: an entry is not an object with exactly ``dtype``, ``shape``, ``data_offsets``
- ``unknown_dtype``: the dtype is not one safetensors defines
- ``unsupported_dtype``: a sub-byte dtype (``F4``, ``F6_E2M3``, ``F6_E3M2``), refused for now, see below
- ``bad_shape``: shape is not a list of non-negative ints, or its element count overflows u64
- ``bad_offsets``: data_offsets is not two non-negative ints ``[begin, end]`` with begin <= end
- ``size_mismatch``: ``end - begin`` differs from ``product(shape) * dtype size``
- ``overlap``: a tensor starts before the previous one (by begin) ends
- ``gap``: bytes between two tensors, or before the first, belong to no tensor
- ``truncated``: the last tensor ends past the end of the file
- ``trailing_bytes``: bytes after the last tensor belong to no tensor

Dtypes: :data:`DTYPE_SIZES` holds every whole-byte dtype safetensors 0.8 defines (including ``C64`` and
the ``FNUZ`` and ``E8M0`` float8 variants). The packed sub-byte dtypes ``F4`` (4 bits) and ``F6_*`` (6
bits) are recognised but refused with ``unsupported_dtype``: their size is not a whole number of bytes
per element, so they cannot live in an ``int`` byte-size table that callers multiply by, and nothing in
the platform consumes them yet. Supporting them means ``nbytes = n_elements * bits / 8`` with the
reference's requirement that this be a whole number of bytes (:data:`SUB_BYTE_DTYPE_BITS` has the bits).
"""

from __future__ import annotations

import json
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from llmops.errors import InvalidModel

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Largest JSON header accepted. Checked before reading the header, so a forged length costs nothing."""

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
"""Bytes per element of every whole-byte dtype safetensors defines; the dtypes this module accepts."""

SUB_BYTE_DTYPE_BITS: dict[str, int] = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
"""Packed dtypes safetensors defines with fewer than 8 bits per element; recognised and refused."""

RULES: frozenset[str] = frozenset(
    {
        "not_a_file",
        "too_small",
        "header_too_large",
        "header_past_end",
        "header_not_utf8",
        "header_not_json",
        "header_not_object",
        "duplicate_name",
        "bad_metadata",
        "bad_name",
        "bad_entry",
        "unknown_dtype",
        "unsupported_dtype",
        "bad_shape",
        "bad_offsets",
        "size_mismatch",
        "overlap",
        "gap",
        "truncated",
        "trailing_bytes",
    }
)
"""Every ``details["rule"]`` value :class:`InvalidModel` can carry from this module."""

_PREFIX = struct.Struct("<Q")
# The reference reader deserialises shapes and offsets as usize and multiplies with overflow checks; a
# number beyond u64 is something no loader can address, so it is refused rather than carried along.
_U64_MAX = 2**64 - 1
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
_METADATA_KEY = "__metadata__"
# Names are attacker-controlled and may be megabytes long; messages show at most this many characters.
_SHOWN_CHARS = 120


@dataclass(frozen=True)
class TensorSpec:
    """One tensor's place in the file. ``begin`` and ``end`` are absolute file offsets, ``end`` exclusive."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsLayout:
    """A validated file: its header bytes verbatim and tensors that tile the data section exactly.

    ``header_bytes`` is the first ``data_start`` bytes of the file (length prefix and JSON header with any
    padding), so an exporter can rebuild the original file byte for byte from it and the tensor blobs.
    ``tensors`` is sorted by ``begin``.
    """

    name: str
    file_size: int
    header_bytes: bytes
    data_start: int
    metadata: dict[str, str] | None
    tensors: tuple[TensorSpec, ...]


class _Repeated:
    """Stands in for a JSON object that repeats a key, so the check that meets it can say where.

    Python's json keeps the last of two equal keys silently; a header whose meaning depends on which
    duplicate wins must be refused, and the reference refuses repeated entry fields as well.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Repeated:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _Repeated(key)
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a repeated key")


def _refuse_constant(token: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; JSON (and the reference reader) does not.
    raise ValueError(f"{token} is not JSON")


def _shown(text: str) -> str:
    """``repr`` of an untrusted string, cut to a readable length for messages."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + f"... ({len(text)} characters)"
    return repr(text)


def _fail(file: str, rule: str, message: str, **details: Any) -> NoReturn:
    raise InvalidModel(
        f"safetensors file {file!r} is invalid ({rule}): {message}",
        details={"file": file, "rule": rule, **details},
    )


def _fail_tensor(file: str, rule: str, tensor: str, message: str, **details: Any) -> NoReturn:
    """``_fail`` for one tensor; the name is shortened only here, off the path of valid entries."""
    _fail(file, rule, f"tensor {_shown(tensor)} {message}", tensor=tensor[:_SHOWN_CHARS], **details)


def _read_exact(fh: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes (fewer only at end of file). One ``read`` call unless the stream returns short."""
    first = fh.read(size) or b""
    if len(first) >= size:
        return first
    parts = [first]
    got = len(first)
    while got < size:
        chunk = fh.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _utf8_encodable(text: str) -> bool:
    # The raw header is valid UTF-8, but a JSON escape such as "\ud800" still yields an unpaired
    # surrogate, which cannot be stored, logged or encoded again; the reference reader rejects it too.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    if isinstance(value, dict | _Repeated):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a float"
    return "a number"


def _parse_metadata(file: str, value: Any) -> dict[str, str]:
    if isinstance(value, _Repeated):
        _fail(file, "bad_metadata", f"__metadata__ repeats the key {_shown(value.key)}", key=value.key[:_SHOWN_CHARS])
    if not isinstance(value, dict):
        _fail(file, "bad_metadata", f"__metadata__ must be an object of strings, not {_json_type(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            _fail(
                file,
                "bad_metadata",
                f"__metadata__[{_shown(key)}] must be a string, not {_json_type(item)}",
                key=key[:_SHOWN_CHARS],
            )
        if not (_utf8_encodable(key) and _utf8_encodable(item)):
            _fail(file, "bad_metadata", "__metadata__ contains an unpaired surrogate escape")
    return value


def _is_u64(value: Any) -> bool:
    # type() rather than isinstance(): JSON true/false arrive as bool, a subclass of int.
    return type(value) is int and 0 <= value <= _U64_MAX


def _parse_entry(file: str, name: str, value: Any, data_start: int) -> TensorSpec:
    """Validate one tensor entry on its own; how entries fit together is checked by the caller."""
    if "\x00" in name:
        _fail_tensor(file, "bad_name", name, "has NUL in its name")
    if not _utf8_encodable(name):
        _fail_tensor(file, "bad_name", name, "has an unpaired surrogate escape in its name")
    if isinstance(value, _Repeated):
        _fail_tensor(file, "bad_entry", name, f"repeats the key {_shown(value.key)}")
    if not isinstance(value, dict):
        _fail_tensor(file, "bad_entry", name, f"must be an object, not {_json_type(value)}")
    if value.keys() != _ENTRY_KEYS:
        missing = sorted(_ENTRY_KEYS - value.keys())
        extra = sorted(_shown(k) for k in value.keys() - _ENTRY_KEYS)
        _fail_tensor(
            file,
            "bad_entry",
            name,
            f"must have exactly dtype, shape and data_offsets (missing {missing}, extra {extra})",
        )

    dtype = value["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        if isinstance(dtype, str) and dtype in SUB_BYTE_DTYPE_BITS:
            _fail_tensor(
                file,
                "unsupported_dtype",
                name,
                f"has the packed {SUB_BYTE_DTYPE_BITS[dtype]}-bit dtype {dtype}; sub-byte dtypes are not supported",
                dtype=dtype,
            )
        what = _shown(dtype) if isinstance(dtype, str) else _json_type(dtype)
        _fail_tensor(file, "unknown_dtype", name, f"has unknown dtype {what}")

    shape = value["shape"]
    if not isinstance(shape, list) or not all(_is_u64(dim) for dim in shape):
        _fail_tensor(file, "bad_shape", name, "has a shape that is not a list of non-negative integers")
    count = 1
    for dim in shape:
        # Overflow is checked at every step, as the reference does, so [2**40, 2**40, 0] is refused even
        # though its product is 0: a loader computing strides would overflow on it.
        count *= dim
        if count > _U64_MAX:
            _fail_tensor(file, "bad_shape", name, "has a shape whose element count overflows 64 bits")

    offsets = value["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not _is_u64(offsets[0])
        or not _is_u64(offsets[1])
        or offsets[0] > offsets[1]
    ):
        _fail_tensor(
            file, "bad_offsets", name, "needs data_offsets of two non-negative integers [begin, end], begin <= end"
        )
    begin, end = offsets
    expected = count * DTYPE_SIZES[dtype]
    if end - begin != expected:
        shown_shape = list(shape) if len(shape) <= 16 else f"of {len(shape)} dimensions"
        _fail_tensor(
            file,
            "size_mismatch",
            name,
            f"({dtype}, shape {shown_shape}) needs {expected} bytes but data_offsets [{begin}, {end}] span "
            f"{end - begin}",
            expected=expected,
            actual=end - begin,
        )
    return TensorSpec(name=name, dtype=dtype, shape=tuple(shape), begin=data_start + begin, end=data_start + end)


def read_layout(fh: BinaryIO, *, file_size: int, name: str) -> SafetensorsLayout:
    """Validate the safetensors file in ``fh`` (``file_size`` bytes long) and return its layout.

    Reads only the length prefix and the header: two ``read`` calls when the stream returns what is asked.
    A seekable ``fh`` is rewound to offset 0 first; a non-seekable one must be positioned at the start.
    ``file_size`` is trusted (take it from ``fstat`` or the blob store), the file's contents are not.
    I/O errors propagate unchanged; everything wrong with the contents raises :class:`InvalidModel`.
    """
    if file_size < _PREFIX.size:
        _fail(name, "too_small", f"{file_size} bytes is shorter than the 8-byte header length", size=file_size)
    if fh.seekable():
        fh.seek(0)
    prefix = _read_exact(fh, _PREFIX.size)
    if len(prefix) < _PREFIX.size:
        _fail(name, "too_small", f"the file ended after {len(prefix)} bytes", size=len(prefix))
    (header_len,) = _PREFIX.unpack(prefix)
    # Both bounds are checked before anything is read or allocated for the header.
    if header_len > MAX_HEADER_BYTES:
        _fail(
            name,
            "header_too_large",
            f"the header claims {header_len} bytes, more than the {MAX_HEADER_BYTES}-byte limit",
            header_len=header_len,
        )
    if header_len > file_size - _PREFIX.size:
        _fail(
            name,
            "header_past_end",
            f"the header claims {header_len} bytes but only {file_size - _PREFIX.size} follow the length",
            header_len=header_len,
        )
    raw = _read_exact(fh, header_len)
    if len(raw) < header_len:
        _fail(
            name,
            "header_past_end",
            f"the file ended after {len(raw)} of the {header_len} header bytes",
            header_len=header_len,
        )
    data_start = _PREFIX.size + header_len

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(name, "header_not_utf8", f"the header is not UTF-8 (byte {exc.start})", position=exc.start)
    try:
        document = json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_refuse_constant)
    except RecursionError:
        _fail(name, "header_not_json", "the header nests too deeply to be a safetensors header")
    except ValueError as exc:  # json.JSONDecodeError, NaN/Infinity, integers past Python's digit limit
        _fail(name, "header_not_json", f"the header is not JSON: {exc}")
    if isinstance(document, _Repeated):
        key = document.key
        _fail(name, "duplicate_name", f"the header names {_shown(key)} twice", tensor=key[:_SHOWN_CHARS])
    if not isinstance(document, dict):
        _fail(name, "header_not_object", f"the header must be a JSON object, not {_json_type(document)}")

    metadata: dict[str, str] | None = None
    specs: list[TensorSpec] = []
    for key, value in document.items():
        if key == _METADATA_KEY:
            metadata = _parse_metadata(name, value)
        else:
            specs.append(_parse_entry(name, key, value, data_start))

    # Ties on begin put zero-size tensors first, so a zero-size tensor at a boundary never looks like
    # an overlap; the name makes the order total and so the layout deterministic.
    specs.sort(key=lambda spec: (spec.begin, spec.end, spec.name))
    cursor = data_start
    previous: TensorSpec | None = None
    for spec in specs:
        if spec.begin < cursor:
            assert previous is not None  # the first tensor cannot start before data_start
            _fail(
                name,
                "overlap",
                f"tensor {_shown(spec.name)} starts at data offset {spec.begin - data_start}, inside "
                f"{_shown(previous.name)} which ends at {previous.end - data_start}",
                tensor=spec.name[:_SHOWN_CHARS],
                other=previous.name[:_SHOWN_CHARS],
            )
        if spec.begin > cursor:
            after = f"after {_shown(previous.name)}" if previous is not None else "at the start of the data"
            _fail(
                name,
                "gap",
                f"{spec.begin - cursor} bytes {after} belong to no tensor (next is {_shown(spec.name)})",
                tensor=spec.name[:_SHOWN_CHARS],
                offset=cursor - data_start,
            )
        cursor = spec.end
        previous = spec
    if cursor > file_size:
        _fail(
            name,
            "truncated",
            f"the tensors need {cursor - data_start} data bytes but the file has {file_size - data_start}",
            expected=cursor,
            size=file_size,
        )
    if cursor < file_size:
        _fail(
            name,
            "trailing_bytes",
            f"{file_size - cursor} bytes after the last tensor belong to no tensor",
            offset=cursor - data_start,
        )

    return SafetensorsLayout(
        name=name,
        file_size=file_size,
        header_bytes=prefix + raw,
        data_start=data_start,
        metadata=metadata,
        tensors=tuple(specs),
    )


def read_layout_path(path: Path, *, name: str | None = None) -> SafetensorsLayout:
    """:func:`read_layout` on a file on disk; ``name`` defaults to the file's name.

    Refuses anything but a regular file before opening it (opening a FIFO would block). The file is
    opened unbuffered, so exactly the prefix and the header are read from disk and no read-ahead
    pulls in tensor data. ``OSError`` (missing file, permissions) propagates.
    """
    label = name if name is not None else path.name
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        _fail(label, "not_a_file", f"{str(path)!r} is not a regular file")
    with open(path, "rb", buffering=0) as fh:
        return read_layout(fh, file_size=os.fstat(fh.fileno()).st_size, name=label)


__all__ = [
    "DTYPE_SIZES",
    "MAX_HEADER_BYTES",
    "RULES",
    "SUB_BYTE_DTYPE_BITS",
    "SafetensorsLayout",
    "TensorSpec",
    "read_layout",
    "read_layout_path",
]
