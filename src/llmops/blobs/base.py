"""The ``BlobStore`` protocol: immutable, content-addressed bytes.

A blob is named by the BLAKE3 digest of its content, so ``put`` of existing content is a no-op and
readers always check what they read against its name. Implementations: ``local.LocalBlobStore``
(a directory) and ``s3.S3BlobStore`` (any S3-compatible store). Helpers that work on every store live
in ``llmops.blobs.io``; maintenance (stats, fsck, gc) in ``llmops.blobs.maintenance``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from llmops.blobs.digest import new_hasher
from llmops.errors import DataCorrupted


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    modified: float  # epoch seconds of the last write (or touch) of the blob


@runtime_checkable
class BlobStore(Protocol):
    url: str

    def put(self, source: BinaryIO) -> BlobInfo:
        """Store the bytes read from ``source`` until EOF; idempotent."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """A reader that raises ``DataCorrupted`` at EOF when the bytes do not match ``digest``."""
        ...

    def stat(self, digest: str) -> BlobInfo | None: ...

    def delete(self, digest: str) -> None: ...

    def iter_blobs(self) -> Iterator[BlobInfo]: ...

    def remove_partial(self, older_than: float) -> int:
        """Remove leftovers of interrupted writes started before ``older_than``; return how many."""
        ...

    def ping(self) -> None:
        """Raise ``Unavailable`` when the store cannot be reached."""
        ...


class VerifyingReader(io.RawIOBase):
    """Wraps a raw stream; hashes what passes through and checks the digest and size at EOF."""

    def __init__(self, raw: BinaryIO, digest: str, size: int | None = None) -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._hasher = new_hasher()
        self._seen = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        raw_readinto = getattr(self._raw, "readinto", None)
        if raw_readinto is not None:  # files: read straight into the caller's buffer, no copies
            n = raw_readinto(buffer) or 0
            data: bytes | memoryview = memoryview(buffer)[:n]
        else:  # S3 bodies and other streams without readinto
            data = self._raw.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        if not n:
            self._check()
            return 0
        self._hasher.update(data)
        self._seen += n
        return n

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = self._hasher.hexdigest()
        if actual != self._digest or (self._size is not None and self._seen != self._size):
            raise DataCorrupted(
                f"blob {self._digest} is corrupted: read {self._seen} bytes hashing to {actual}",
                details={"digest": self._digest, "actual": actual, "bytes": self._seen},
            )

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()
