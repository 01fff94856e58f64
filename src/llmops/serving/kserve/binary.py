"""Triton's binary tensor data extension, as ``tritonclient.http`` speaks it with its default settings.

A request whose body carries raw tensors has the header ``Inference-Header-Content-Length: N``: the first ``N``
bytes are the JSON inference request, the rest are the tensors, one after another in input order, each input
saying how many bytes are its own (``parameters.binary_data_size``). A BYTES tensor is its elements in
row-major order, each a 4-byte little-endian length followed by that many bytes; other datatypes are their
little-endian values. Responses do the same for every output asked for in binary (``binary_data`` on the
output, or ``binary_data_output`` on the request when it names no outputs, which is what ``tritonclient``
sends by default). Without binary outputs the response is plain JSON.

Request bodies compressed with ``Content-Encoding: gzip`` or ``deflate`` (``tritonclient``'s
``request_compression_algorithm``) are inflated up to the body size limit.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.errors import InvalidInput, PayloadTooLarge

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
_LENGTH = struct.Struct("<I")


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before ``Content-Encoding`` (identity, gzip or deflate), at most ``limit`` bytes."""
    kind = (encoding or "identity").strip().lower()
    if kind == "identity":
        return body
    if kind not in ("gzip", "deflate"):
        raise InvalidInput(f"Content-Encoding {encoding} is not supported: send identity, gzip or deflate")
    inflater = zlib.decompressobj(wbits=31 if kind == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the request body is not valid {kind} data: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"the inflated request body is over the limit of {limit} bytes")
    return out


def split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON inference header and the binary part after it (empty without the extension's header)."""
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(body):
        raise InvalidInput(
            f"{HEADER_LENGTH} must be a byte count between 0 and the body's length ({len(body)}), got {header_length!r}"
        )
    return body[:n], body[n:]


def encode_bytes(elements: Sequence[bytes]) -> bytes:
    """A BYTES tensor's raw form: each element as a 4-byte little-endian length and its bytes."""
    return b"".join(_LENGTH.pack(len(e)) + e for e in elements)


def decode_bytes(raw: bytes, name: str) -> list[bytes]:
    """The elements of a BYTES tensor's raw form; a truncated element is an error."""
    out: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"input {name}: its binary data ends inside an element's 4-byte length")
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput(
                f"input {name}: an element says it has {size} bytes but only {len(raw) - offset} remain in its data"
            )
        out.append(raw[offset : offset + size])
        offset += size
    return out


def encode_fp32(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


class Reader:
    """Hands out the binary part of a request, tensor by tensor, and checks nothing is left over."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, name: str) -> bytes:
        if self.offset + size > len(self.data):
            raise InvalidInput(
                f"input {name}: binary_data_size is {size} but only {len(self.data) - self.offset} bytes of binary "
                "data remain after the inference header"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def finish(self) -> None:
        extra = len(self.data) - self.offset
        if extra:
            raise InvalidInput(f"the body has {extra} bytes of binary data that no input's binary_data_size claims")


@dataclass
class Encoded:
    """A response body and the headers that describe it."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def encode(header: dict[str, Any], buffers: Sequence[bytes]) -> Encoded:
    """The JSON header alone, or followed by the binary outputs (with ``Inference-Header-Content-Length``)."""
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    if not buffers:
        return Encoded(head, {"content-type": JSON_TYPE})
    return Encoded(head + b"".join(buffers), {"content-type": BINARY_TYPE, HEADER_LENGTH: str(len(head))})


__all__ = [
    "BINARY_TYPE",
    "HEADER_LENGTH",
    "JSON_TYPE",
    "Encoded",
    "Reader",
    "decode_bytes",
    "encode",
    "encode_bytes",
    "encode_fp32",
    "inflate",
    "split",
]
