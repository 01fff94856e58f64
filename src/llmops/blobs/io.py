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
    with open(path, "rb") as fh:
        return store.put(fh)


def read_bytes(store: BlobStore, digest: str) -> bytes:
    with store.open(digest) as fh:
        return fh.read()


def copy_to(store: BlobStore, digest: str, dest: BinaryIO) -> int:
    """Stream a blob into ``dest``, verifying it; returns the byte count."""
    total = 0
    with store.open(digest) as fh:
        while chunk := fh.read(CHUNK_SIZE):
            dest.write(chunk)
            total += len(chunk)
    return total


def verify(store: BlobStore, digest: str) -> bool:
    """Read a blob to the end; ``False`` when its bytes do not match its digest."""
    try:
        with store.open(digest) as fh:
            while fh.read(CHUNK_SIZE):
                pass
    except DataCorrupted:
        return False
    return True
