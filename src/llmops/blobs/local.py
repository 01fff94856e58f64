"""A blob store in a local directory.

Layout: ``objects/ab/cd/<digest>`` (two levels of sharding keep directories small at millions of
blobs) and ``tmp/`` for writes in progress. A write streams into a temporary file while hashing,
fsyncs it, and renames it into place, so a reader (or a crash) never sees a partial blob. Stored blobs
are made read-only. Putting content that already exists refreshes its modification time, so that a
concurrent ``gc`` never removes a blob that a writer is about to reference.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from llmops.blobs.base import BlobInfo, VerifyingReader
from llmops.blobs.digest import CHUNK_SIZE, check_digest, new_hasher
from llmops.errors import NotFound, Unavailable


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        check_digest(digest)
        return self._objects / digest[:2] / digest[2:4] / digest

    def put(self, source: BinaryIO) -> BlobInfo:
        hasher = new_hasher()
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        size = 0
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb", buffering=0) as out:
                readinto = getattr(source, "readinto", None)
                while True:
                    if readinto is not None:
                        n = readinto(view)
                        if not n:
                            break
                        chunk = view[:n]
                    else:
                        data = source.read(CHUNK_SIZE)
                        if not data:
                            break
                        chunk = memoryview(data)
                        n = len(data)
                    hasher.update(chunk)
                    out.write(chunk)
                    size += n
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            final = self.path(digest)
            if final.exists():
                os.utime(final)  # refresh: gc must not take it while our caller references it
                tmp.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
                _fsync_dir(final.parent)
            return BlobInfo(digest=digest, size=size, modified=time.time())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, digest: str) -> BinaryIO:
        path = self.path(digest)
        try:
            fh = open(path, "rb", buffering=0)  # noqa: SIM115 - handed to the caller
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from {self.url}") from None
        size = os.fstat(fh.fileno()).st_size
        return io.BufferedReader(VerifyingReader(fh, digest, size), CHUNK_SIZE)

    def stat(self, digest: str) -> BlobInfo | None:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return None
        return BlobInfo(digest=digest, size=st.st_size, modified=st.st_mtime)

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        for shard1 in sorted(self._objects.iterdir()):
            if not shard1.is_dir():
                continue
            for shard2 in sorted(shard1.iterdir()):
                for entry in sorted(os.scandir(shard2), key=lambda e: e.name):
                    st = entry.stat()
                    yield BlobInfo(digest=entry.name, size=st.st_size, modified=st.st_mtime)

    def remove_partial(self, older_than: float) -> int:
        removed = 0
        for entry in os.scandir(self._tmp):
            if entry.stat().st_mtime < older_than:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed

    def ping(self) -> None:
        if not (self._objects.is_dir() and os.access(self._tmp, os.W_OK)):
            raise Unavailable(f"blob store {self.url} is not a writable directory")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
