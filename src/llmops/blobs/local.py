"""A blob store in a local directory.

Layout: ``objects/ab/cd/<digest>`` (two levels of sharding keep directories small at millions of
blobs) and ``tmp/`` for writes in progress. A write streams into a temporary file while hashing,
fsyncs it, and renames it into place, so a reader (or a crash) never sees a partial blob. Stored blobs
are made read-only. Putting content that already exists refreshes its modification time, so that a
concurrent ``gc`` never removes a blob that a writer is about to reference.

``fsync=False`` (``LLMOPS_STORE_FSYNC=false``) leaves writing blobs to disk to the operating system, as
``cp`` does: bulk imports on a machine whose disk is the limit then run at copy speed instead of durable
write speed (benchmarks/BENCHMARKS.md "Registry"). Atomicity is unchanged (a process crash, SIGKILL
included, still never exposes a partial blob: the page cache survives it); what is given up is only the
guarantee across a power loss or kernel crash, after which a recently written blob may be empty or short.
Every read verifies the digest, so such a blob fails closed on load and ``llmops store fsck`` reports it.
"""

from __future__ import annotations

import ctypes
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from llmops.blobs.base import BlobInfo, VerifyingReader
from llmops.blobs.digest import CHUNK_SIZE, check_digest, new_hasher
from llmops.errors import DataCorrupted, NotFound, Unavailable


class LocalBlobStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
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
                    if self.fsync:  # start writeback now so the final fsync does not do all the disk work at once
                        _start_writeback(out.fileno(), size, n)
                    size += n
                if self.fsync:
                    os.fsync(out.fileno())
            return self._publish(tmp, hasher.hexdigest(), size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _publish(self, tmp: Path, digest: str, size: int) -> BlobInfo:
        """Move a written, fsynced temporary file to its content address (or drop it if already there)."""
        final = self.path(digest)
        if final.exists():
            os.utime(final)  # refresh: gc must not take it while our caller references it
            tmp.unlink()
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            if self.fsync:
                _fsync_dir(final.parent)
        return BlobInfo(digest=digest, size=size, modified=time.time())

    def put_file(self, path: Path) -> BlobInfo:
        """Store a local file: the kernel copies it (``copy_file_range``) into a temporary file, which is
        then hashed from memory on all cores while it is fsynced in parallel.

        Hashing the copy rather than the source means a source modified during the call can never be
        stored under a digest it does not match.
        """
        with open(path, "rb") as src:
            return self.put_range(src.fileno(), 0, os.fstat(src.fileno()).st_size)

    def put_range(self, fd: int, begin: int, end: int) -> BlobInfo:
        """Store bytes ``[begin, end)`` of an open file the same way (a tensor inside a safetensors file)."""
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        size = end - begin
        try:
            with open(tmp, "xb") as dst:
                _kernel_copy(fd, dst.fileno(), size, offset=begin)
                if self.fsync:
                    _start_writeback(dst.fileno(), 0, size)
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        synced = pool.submit(os.fsync, dst.fileno())
                        digest = _hash_file(tmp)
                        synced.result()
                else:
                    digest = _hash_file(tmp)
            return self._publish(tmp, digest, size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get_file(self, digest: str, dest: Path) -> int:
        """Copy a blob to ``dest`` (kernel copy) while verifying its digest from memory in parallel.

        On a mismatch ``dest`` is removed and ``DataCorrupted`` raised: a corrupted blob never lands.
        """
        src_path = self.path(digest)
        try:
            src = open(src_path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from {self.url}") from None
        try:
            size = os.fstat(src.fileno()).st_size
            with open(dest, "wb") as dst, ThreadPoolExecutor(max_workers=1) as pool:
                hashed = pool.submit(_hash_file, src_path)
                _kernel_copy(src.fileno(), dst.fileno(), size)
                actual = hashed.result()
        finally:
            src.close()
        if actual != digest:
            Path(dest).unlink(missing_ok=True)
            raise DataCorrupted(
                f"blob {digest} is corrupted: its content hashes to {actual}",
                details={"digest": digest, "actual": actual},
            )
        return size

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


def copy_verified(src_path: Path, dst_fd: int, digest: str, *, what: str, writeback: bool = True) -> int:
    """Append a stored blob to ``dst_fd`` (kernel copy) while checking its digest from memory in parallel.

    The copy goes in ``CHUNK_SIZE`` steps; with ``writeback`` each is followed by ``sync_file_range(WRITE)``
    on what it wrote: the disk writes the output while the next bytes are read, so a caller's final fsync
    has little left (a durable export of the 1.23 GB benchmark model, cold cache: 95 -> 136 MB/s, median of
    7 interleaved pairs). A caller that will not fsync soon may pass ``writeback=False``.

    Raises ``DataCorrupted`` naming ``what`` on a mismatch; the caller discards the partial output.
    """
    try:
        src = open(src_path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise DataCorrupted(f"{what}: blob {digest} is missing from the store", details={"tensor": what}) from None
    with src, ThreadPoolExecutor(max_workers=1) as pool:
        size = os.fstat(src.fileno()).st_size
        hashed = pool.submit(_hash_file, src_path)
        start = os.lseek(dst_fd, 0, os.SEEK_CUR)
        copied = 0
        try:
            while copied < size:
                n = os.copy_file_range(src.fileno(), dst_fd, min(size - copied, CHUNK_SIZE), copied)
                if n == 0:
                    break
                if writeback:
                    _start_writeback(dst_fd, start + copied, n)
                copied += n
        except OSError:  # e.g. EXDEV across filesystems on older kernels: copy through user space
            if copied:
                raise
            while chunk := os.pread(src.fileno(), CHUNK_SIZE, copied):
                os.write(dst_fd, chunk)
                if writeback:
                    _start_writeback(dst_fd, start + copied, len(chunk))
                copied += len(chunk)
        actual = hashed.result()
    if actual != digest or copied != size:
        raise DataCorrupted(
            f"{what} is corrupted: stored bytes hash to {actual}, expected {digest}",
            details={"tensor": what, "digest": digest, "actual": actual},
        )
    return size


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    # os.sync_file_range is not exposed by CPython 3.11; glibc has it on Linux.
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _load_sync_file_range()
SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # best effort; fsync is the guarantee


def _hash_file(path: Path) -> str:
    # mmap, unlike ``digest_file``: no copy into Python, and a blob is one tensor at most, so the mapped pages
    # a reader holds stay bounded by the largest tensor (import of the 2 GiB benchmark model: 323 MB peak RSS
    # with two stores at a time; reading in 8 MiB pieces made that import about 15 % slower).
    hasher = new_hasher()
    if os.path.getsize(path):
        hasher.update_mmap(str(path))  # multi-threaded, releases the GIL
    return hasher.hexdigest()


def _kernel_copy(src: int, dst: int, size: int, *, offset: int | None = None) -> None:
    """Copy ``size`` bytes between descriptors inside the kernel (reflink or in-kernel copy).

    With ``offset`` the source is read from there (``pread`` semantics, its file position untouched).
    """
    copied = 0
    try:
        while copied < size:
            if offset is None:
                n = os.copy_file_range(src, dst, min(size - copied, 1 << 30))
            else:
                n = os.copy_file_range(src, dst, min(size - copied, 1 << 30), offset + copied)
            if n == 0:
                break
            copied += n
    except OSError:  # filesystems or kernels without copy_file_range: read and write
        if copied:
            raise
        start = offset or 0
        while copied < size:
            chunk = os.pread(src, min(CHUNK_SIZE, size - copied), start + copied)
            if not chunk:
                break
            os.write(dst, chunk)
            copied += len(chunk)
    if copied != size:
        raise OSError(f"short copy: {copied} of {size} bytes (file changed while copying?)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
