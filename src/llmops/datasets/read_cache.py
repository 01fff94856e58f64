"""Verified local copies of dataset files, reused across reads.

Every read of a version (a UI page of sample rows, ``head``, an export, a transform) needs the Parquet
file locally, and copying it out of the store (with its digest checked) on each read costs a full pass
over the file: seconds for a gigabyte, every page view. Versions are immutable and content addressed, so
one verified copy per blob digest serves every later read. Copies are written to a temporary name,
fsynced and renamed, so a crash never leaves a truncated copy under a digest's name; least recently used
copies beyond ``cap_bytes`` are removed, but never one used in the last ``GRACE_SECONDS`` (a reader in
another process may be about to open it).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from llmops.blobs.base import BlobStore
from llmops.blobs.io import get_path

GRACE_SECONDS = 300.0


class ReadCache:
    def __init__(self, root: Path, blobs: BlobStore, *, cap_bytes: int) -> None:
        self.root = Path(root)
        self.blobs = blobs
        self.cap_bytes = cap_bytes

    def path(self, digest: str) -> Path:
        """A local, verified, read-only copy of the blob ``digest``."""
        final = self.root / f"{digest}.parquet"
        try:
            os.utime(final)  # marks it used (and protects it from eviction for a while)
            return final
        except FileNotFoundError:
            pass
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{digest}.{uuid.uuid4().hex[:8]}.part"
        try:
            get_path(self.blobs, digest, tmp)  # verified; a corrupted blob leaves no file
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.evict(keep=final)
        return final

    def evict(self, *, keep: Path | None = None) -> list[Path]:
        entries = []
        for path in self.root.glob("*.parquet"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed: list[Path] = []
        now = time.time()
        for mtime, size, path in sorted(entries):
            if total <= self.cap_bytes:
                break
            if path == keep or now - mtime < GRACE_SECONDS:
                continue
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        return removed
