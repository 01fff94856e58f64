"""The local model cache: materialized versions keyed by manifest digest, size-capped, LRU-evicted.

Serving loads models from here. An entry is written by ``RegistryService.pull`` (every tensor and every
file verified) into a staging directory and renamed into place, so a reader sees a complete, verified
model or nothing; its files are made read-only. Reusing an entry (across restarts too) checks that every
file is present with its recorded size, which keeps a cached load close to a plain disk load;
``verify_entry`` re-hashes everything when a full check is wanted. When the cache is over its cap, the
least recently used entries are removed (never the one just requested).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from llmops.registry.manifest import Manifest
from llmops.registry.service import RegistryService

MARKER = ".llmops-entry.json"


@dataclass(frozen=True)
class CacheEntry:
    digest: str
    path: Path
    size: int
    last_used: float
    ref: str


class ModelCache:
    def __init__(self, root: Path, registry: RegistryService, *, cap_bytes: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry = registry
        self.cap_bytes = cap_bytes

    def materialize(self, ref: str) -> Path:
        """A local directory with the version's files, from the cache or freshly verified from the store."""
        manifest = self.registry.manifest(ref)
        digest = manifest.digest
        final = self.root / digest
        if self._complete(final, manifest):
            self._touch(final)
            return final
        staging = self.root / f".staging-{uuid.uuid4().hex[:8]}"
        self.registry.pull(ref, staging)
        for dirpath, _, files in os.walk(staging):
            for name in files:
                os.chmod(Path(dirpath) / name, 0o444)
        (staging / MARKER).write_text(
            json.dumps({"ref": ref, "size": manifest.logical_bytes, "last_used": time.time()})
        )
        try:
            os.replace(staging, final)
        except OSError:  # another process cached it first
            shutil.rmtree(staging, ignore_errors=True)
            if not self._complete(final, manifest):
                raise
        self.evict(keep=digest)
        return final

    def entries(self) -> list[CacheEntry]:
        out = []
        for path in self.root.iterdir():
            marker = path / MARKER
            if path.name.startswith(".") or not marker.exists():
                continue
            info = json.loads(marker.read_text())
            out.append(CacheEntry(path.name, path, int(info["size"]), float(info["last_used"]), str(info["ref"])))
        return sorted(out, key=lambda e: e.last_used)

    def evict(self, *, keep: str | None = None) -> list[str]:
        """Remove least recently used entries until the cache fits its cap; returns removed digests."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            if total <= self.cap_bytes:
                break
            if entry.digest == keep:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size
            removed.append(entry.digest)
        for leftover in self.root.glob(".staging-*"):  # interrupted materializations
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
        return removed

    def verify_entry(self, ref: str) -> bool:
        """Re-hash every file of a cached version against the manifest (SHA-256)."""
        import hashlib

        manifest = self.registry.manifest(ref)
        path = self.root / manifest.digest
        if not self._complete(path, manifest):
            return False
        for entry in manifest.files:
            sha = hashlib.sha256()
            with open(path / entry.path, "rb") as fh:
                while chunk := fh.read(8 << 20):
                    sha.update(chunk)
            if sha.hexdigest() != entry.sha256:
                return False
        return True

    def _complete(self, path: Path, manifest: Manifest) -> bool:
        if not (path / MARKER).exists():
            return False
        try:
            return all((path / f.path).stat().st_size == f.size for f in manifest.files)
        except FileNotFoundError:
            return False

    def _touch(self, path: Path) -> None:
        marker = path / MARKER
        info = json.loads(marker.read_text())
        info["last_used"] = time.time()
        tmp = path / f"{MARKER}.{uuid.uuid4().hex[:6]}"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, marker)
