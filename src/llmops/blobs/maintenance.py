"""Store maintenance: statistics, consistency check (fsck) and garbage collection (gc).

gc is safe against concurrent writers because writes are ordered blobs-first, metadata-second: a blob
that is not yet referenced is young (its write or touch is recent), and gc only removes unreferenced
blobs older than the grace period.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmops.blobs.base import BlobStore
from llmops.blobs.io import verify
from llmops.blobs.refs import referenced
from llmops.db.database import Database

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class StoreStats:
    url: str
    blobs: int = 0
    bytes: int = 0
    referenced_blobs: int = 0
    referenced_bytes: int = 0
    unreferenced_blobs: int = 0
    unreferenced_bytes: int = 0
    missing: int = 0


@dataclass
class FsckReport:
    checked: int = 0
    missing: dict[str, list[str]] = field(default_factory=dict)  # digest -> owners
    corrupted: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.missing and not self.corrupted


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept_young: int = 0
    partial_removed: int = 0
    dry_run: bool = False


class BlobMaintenance:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    def stats(self) -> StoreStats:
        with self.db.read() as session:
            refs = referenced(session)
        stats = StoreStats(url=self.store.url)
        seen: set[str] = set()
        for blob in self.store.iter_blobs():
            seen.add(blob.digest)
            stats.blobs += 1
            stats.bytes += blob.size
            if blob.digest in refs:
                stats.referenced_blobs += 1
                stats.referenced_bytes += blob.size
            else:
                stats.unreferenced_blobs += 1
                stats.unreferenced_bytes += blob.size
        stats.missing = len(set(refs) - seen)
        return stats

    def fsck(self, *, verify_content: bool = True, progress: Progress | None = None) -> FsckReport:
        """Every referenced blob must exist; with ``verify_content`` every stored blob is re-hashed."""
        with self.db.read() as session:
            refs = referenced(session)
        report = FsckReport()
        stored = {b.digest for b in self.store.iter_blobs()}
        for digest, owners in refs.items():
            if digest not in stored:
                report.missing[digest] = owners
        targets = sorted(stored) if verify_content else []
        for i, digest in enumerate(targets, 1):
            if not verify(self.store, digest):
                report.corrupted.append(digest)
            report.checked = i
            if progress:
                progress(i, len(targets))
        return report

    def gc(self, *, grace_seconds: float, dry_run: bool = False, progress: Progress | None = None) -> GcReport:
        cutoff = time.time() - grace_seconds
        report = GcReport(dry_run=dry_run)
        candidates = list(self.store.iter_blobs())
        # References are read after listing: a blob written and referenced in between is kept either way.
        with self.db.read() as session:
            refs = referenced(session)
        for i, blob in enumerate(candidates, 1):
            if blob.digest not in refs:
                if blob.modified >= cutoff:
                    report.kept_young += 1
                else:
                    current = self.store.stat(blob.digest)  # re-check: a put may have just refreshed it
                    if current is not None and current.modified < cutoff:
                        if not dry_run:
                            self.store.delete(blob.digest)
                        report.removed.append(blob.digest)
                        report.bytes_freed += blob.size
                    else:
                        report.kept_young += 1
            if progress:
                progress(i, len(candidates))
        if not dry_run:
            report.partial_removed = self.store.remove_partial(cutoff)
        return report
