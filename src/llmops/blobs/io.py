"""Conveniences built on the ``BlobStore`` protocol, the same for every implementation."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from llmops.blobs.base import BlobInfo, BlobStore
from llmops.blobs.digest import CHUNK_SIZE
from llmops.errors import DataCorrupted


def put_bytes(store: BlobStore, data: bytes) -> BlobInfo:
    return store.put(io.BytesIO(data))


def put_path(store: BlobStore, path: Path) -> BlobInfo:
    """Store a local file; stores with a file fast path (the local store) use it."""
    fast = getattr(store, "put_file", None)
    if fast is not None:
        info: BlobInfo = fast(Path(path))
        return info
    with open(path, "rb") as fh:
        return store.put(fh)


def get_path(store: BlobStore, digest: str, dest: Path) -> int:
    """Write a verified blob to a local file; returns its size. A corrupted blob leaves no file."""
    fast = getattr(store, "get_file", None)
    if fast is not None:
        size: int = fast(digest, Path(dest))
        return size
    try:
        with open(dest, "wb") as out:
            return copy_to(store, digest, out)
    except BaseException:
        Path(dest).unlink(missing_ok=True)
        raise


def read_bytes(store: BlobStore, digest: str) -> bytes:
    with store.open(digest) as fh:
        return fh.read()


def copy_to(store: BlobStore, digest: str, dest: BinaryIO) -> int:
    """Stream a blob into ``dest``, verifying it; returns the byte count."""
    total = 0
    buf = bytearray(CHUNK_SIZE)  # one buffer reused: no allocation (and page faults) per chunk
    view = memoryview(buf)
    with store.open(digest) as fh:
        while n := fh.readinto(view):  # type: ignore[attr-defined]
            dest.write(view[:n])
            total += n
    return total


def verify(store: BlobStore, digest: str) -> bool:
    """Read a blob to the end; ``False`` when its bytes do not match its digest."""
    buf = bytearray(CHUNK_SIZE)
    try:
        with store.open(digest) as fh:
            while fh.readinto(buf):  # type: ignore[attr-defined]
                pass
    except DataCorrupted:
        return False
    return True
