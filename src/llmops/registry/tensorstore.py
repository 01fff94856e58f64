"""Tensor-level storage: each distinct tensor content once, raw, compressed, or as a compressed XOR delta.

A tensor is identified by the BLAKE3 digest of its raw bytes, so identical tensors (an embedding shared by
a base and its LoRA merge, an unchanged layer of a partial fine-tune) are stored once across the whole
registry. A tensor with a *base* (the same name, shape and dtype in the version it derives from) is also
encoded as ``zstd(tensor XOR base)``: fine-tuning changes low mantissa bits and leaves signs and exponents
mostly alone, so the XOR is mostly zero bytes and compresses far better than the weights themselves (the
BitX idea published in ZipLLM, NSDI 2026). The delta is kept only when it is smaller than the compressed
raw tensor. Delta chains are capped (``MAX_DEPTH``) so a load never decodes a long chain.

Everything streams in chunks of ``CHUNK`` bytes: memory stays bounded whatever the tensor size.
Decoding always re-hashes the result and fails closed when it does not match the tensor's digest.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import zstandard

from llmops.blobs.base import BlobInfo, BlobStore
from llmops.blobs.digest import new_hasher
from llmops.errors import DataCorrupted

CHUNK = 8 * 1024 * 1024
MAX_DEPTH = 4
ZSTD_LEVEL = 3
SAMPLE = 1024 * 1024  # bytes compressed to estimate whether compressing a raw tensor pays
# Keep zstd only when it saves at least 25 %: bf16 and fp32 weights compress to about 0.78-0.9 at several
# hundred MB/s, which would cost most of the import throughput for little space (benchmarks/BENCHMARKS.md).
WORTH_COMPRESSING = 0.75
SPOOL = 16 * 1024 * 1024


@dataclass(frozen=True)
class StoredTensor:
    digest: str
    size: int
    encoding: str  # raw | zstd | xor-zstd
    blob: BlobInfo
    base_digest: str | None
    depth: int


# A tensor's raw bytes as a sequence of chunks, produced on demand (a file range or a decoded tensor).
ChunkSource = Callable[[], Iterator[bytes]]


class FileRange:
    """``[begin, end)`` of an open file as a chunk source (``pread``: no shared file position).

    It also tells stores with a file fast path (``put_range``) where the bytes are, so they can be copied
    inside the kernel instead of through Python.
    """

    def __init__(self, fd: int, begin: int, end: int) -> None:
        self.fd, self.begin, self.end = fd, begin, end

    def __call__(self) -> Iterator[bytes]:
        pos = self.begin
        while pos < self.end:
            data = os.pread(self.fd, min(CHUNK, self.end - pos), pos)
            if not data:
                raise DataCorrupted(f"file ended at byte {pos}, expected {self.end}")
            pos += len(data)
            yield data


def file_range(fd: int, begin: int, end: int) -> FileRange:
    return FileRange(fd, begin, end)


def hash_chunks(source: ChunkSource) -> tuple[str, int]:
    """BLAKE3 digest and size of a chunk source."""
    hasher = new_hasher()
    size = 0
    for chunk in source():
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


class _ChunkReader(io.RawIOBase):
    """A readable stream over a chunk iterator (for ``BlobStore.put``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._pending = nxt
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _xor_chunks(a: Iterator[bytes], b: Iterator[bytes]) -> Iterator[bytes]:
    """XOR two equally long chunk streams whose chunk boundaries may differ."""
    buf_b = b""
    for chunk in a:
        while len(buf_b) < len(chunk):
            nxt = next(b, None)
            if nxt is None:
                raise DataCorrupted("delta base is shorter than the tensor")
            buf_b += nxt
        left, buf_b = buf_b[: len(chunk)], buf_b[len(chunk) :]
        yield np.bitwise_xor(np.frombuffer(chunk, np.uint8), np.frombuffer(left, np.uint8)).tobytes()


def _compress_to_spool(chunks: Iterator[bytes]) -> tuple[BinaryIO, int]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 - returned to the caller
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    with compressor.stream_writer(spool, closefd=False) as writer:
        for chunk in chunks:
            writer.write(chunk)
    size = spool.tell()
    spool.seek(0)
    return spool, size  # type: ignore[return-value]


def _compress_ratio_sample(source: ChunkSource) -> float:
    head = b""
    for chunk in source():
        head += chunk[: SAMPLE - len(head)]
        if len(head) >= SAMPLE:
            break
    if not head:
        return 1.0
    return len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(head)) / len(head)


def store_unhashed(blobs: BlobStore, source: ChunkSource, size: int) -> StoredTensor | None:
    """Store an incompressible tensor in one pass: the store's kernel copy is hashed once, and that digest
    names the tensor. Saves the separate hashing pass ``encode`` needs (its digest decides dedup first).

    Applies only where the store copies file ranges itself (the local store) and a sample says zstd would
    not pay; returns None otherwise. If the tensor was already known, the blob it wrote is the same raw blob
    (content addressed) or, when the registry holds it compressed, an unreferenced blob ``store gc`` removes.
    """
    put_range = getattr(blobs, "put_range", None)
    if put_range is None or not isinstance(source, FileRange) or _compress_ratio_sample(source) < WORTH_COMPRESSING:
        return None
    blob = put_range(source.fd, source.begin, source.end)
    return StoredTensor(blob.digest, size, "raw", blob, None, 0)


def encode(
    blobs: BlobStore,
    source: ChunkSource,
    digest: str,
    size: int,
    *,
    base: tuple[str, int, ChunkSource] | None = None,
) -> StoredTensor:
    """Store a tensor whose digest is already known; ``base`` is ``(digest, depth, decoded chunks)``."""
    ratio = _compress_ratio_sample(source)
    raw_estimate = int(size * ratio) if ratio < WORTH_COMPRESSING else size
    if base is not None and base[1] < MAX_DEPTH:
        base_digest, base_depth, base_source = base
        spool, delta_size = _compress_to_spool(_xor_chunks(source(), base_source()))
        with spool:
            if delta_size < raw_estimate:
                blob = blobs.put(spool)
                return StoredTensor(digest, size, "xor-zstd", blob, base_digest, base_depth + 1)
    if ratio < WORTH_COMPRESSING:
        spool, _ = _compress_to_spool(source())
        with spool:
            blob = blobs.put(spool)
        return StoredTensor(digest, size, "zstd", blob, None, 0)
    put_range = getattr(blobs, "put_range", None)
    if put_range is not None and isinstance(source, FileRange):
        blob = put_range(source.fd, source.begin, source.end)  # kernel copy, hashed from memory
    else:
        blob = blobs.put(io.BufferedReader(_ChunkReader(source()), CHUNK))
    if blob.digest != digest:
        raise DataCorrupted(f"tensor changed while it was stored: expected {digest}, stored {blob.digest}")
    return StoredTensor(digest, size, "raw", blob, None, 0)


@dataclass(frozen=True)
class TensorRecord:
    """What ``decode`` needs to know about a stored tensor (a row of ``tensor_objects``)."""

    digest: str
    size: int
    encoding: str
    blob_digest: str
    base_digest: str | None


def decode(
    blobs: BlobStore, record: TensorRecord, lookup: Callable[[str], TensorRecord], *, what: str
) -> Iterator[bytes]:
    """The raw bytes of a stored tensor, verified against its digest at the end (``what`` names it)."""
    hasher = new_hasher()
    seen = 0
    try:
        for chunk in _decode_unverified(blobs, record, lookup):
            hasher.update(chunk)
            seen += len(chunk)
            yield chunk
    except DataCorrupted as exc:
        raise DataCorrupted(f"{what}: {exc.message}", details={"tensor": what, "digest": record.digest}) from exc
    actual = hasher.hexdigest()
    if actual != record.digest or seen != record.size:
        raise DataCorrupted(
            f"{what} is corrupted: decoded {seen} bytes hashing to {actual}, expected {record.digest}",
            details={"tensor": what, "digest": record.digest, "actual": actual},
        )


def _decode_unverified(
    blobs: BlobStore, record: TensorRecord, lookup: Callable[[str], TensorRecord]
) -> Iterator[bytes]:
    if record.encoding == "raw":
        with blobs.open(record.blob_digest) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
        return
    if record.encoding == "zstd":
        yield from _zstd_chunks(blobs, record.blob_digest)
        return
    if record.encoding == "xor-zstd":
        assert record.base_digest is not None
        base = lookup(record.base_digest)
        yield from _xor_chunks(_zstd_chunks(blobs, record.blob_digest), _decode_unverified(blobs, base, lookup))
        return
    raise DataCorrupted(f"unknown tensor encoding {record.encoding!r}")


def _zstd_chunks(blobs: BlobStore, blob_digest: str) -> Iterator[bytes]:
    try:
        with blobs.open(blob_digest) as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
            while chunk := reader.read(CHUNK):
                yield chunk
    except zstandard.ZstdError as exc:  # seen before the blob's digest check at its end: still corruption
        raise DataCorrupted(f"blob {blob_digest} does not decompress: {exc}", details={"digest": blob_digest}) from exc
