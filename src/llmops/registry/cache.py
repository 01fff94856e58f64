"""The local model cache: materialized versions keyed by manifest digest, size-capped, LRU-evicted.

Serving loads models from here. An entry is written by ``RegistryService.pull`` (every tensor and every
file verified) into a staging directory and renamed into place, so a reader sees a complete, verified
model or nothing; its files are made read-only. The fsync of a new entry runs in the background, so the
first load does not wait for the disk: the entry's marker (what makes it reusable after a restart) is
written only once its files are durable, and while the sync runs a ``.syncing`` note (boot id and pid)
tells other processes the directory is good to read. An entry left without a marker by a crash is
rebuilt. Reusing an entry (across restarts too) checks that every file is present with its recorded size,
which keeps a cached load close to a plain disk load; ``verify_entry`` re-hashes everything when a full
check is wanted. When the cache is over its cap, the least recently used entries are removed (never the
one just requested, nor one still being synced).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmops.registry.manifest import Manifest, file_checksum
from llmops.registry.service import RegistryService

MARKER = ".llmops-entry.json"
SYNCING = ".syncing"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


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
        self._pending: dict[str, threading.Thread] = {}

    def materialize(self, ref: str, *, trusted_keys: Sequence[str] | None = None) -> Path:
        """A local directory with the version's files, from the cache or freshly verified from the store.

        With ``trusted_keys`` (a deployment that requires signatures), the version must carry a valid
        signature by one of them, checked against the very manifest loaded; otherwise ``PermissionDenied``.
        """
        manifest = self.registry.manifest(ref)
        if trusted_keys is not None:
            self.registry.require_signature(ref, trusted_keys, manifest_digest=manifest.digest)
        digest = manifest.digest
        final = self.root / digest
        if self._complete(final, manifest):
            self._touch(final)
            return final
        if self._being_synced(final, manifest):
            return final
        if final.exists():  # left without its marker by a crash: rebuild it
            shutil.rmtree(final, ignore_errors=True)
        staging = self.root / f".staging-{uuid.uuid4().hex[:8]}"
        self.registry.pull(ref, staging, durable=False)
        for dirpath, _, files in os.walk(staging):
            for name in files:
                os.chmod(Path(dirpath) / name, 0o444)
        (staging / SYNCING).write_text(json.dumps({"boot_id": _boot_id(), "pid": os.getpid()}))
        try:
            os.replace(staging, final)
        except OSError:  # another process cached it first
            shutil.rmtree(staging, ignore_errors=True)
            if self._complete(final, manifest) or self._being_synced(final, manifest):
                return final
            raise
        info = {"ref": ref, "size": manifest.logical_bytes, "last_used": time.time()}
        thread = threading.Thread(target=self._make_durable, args=(final, info), name=f"cache-sync-{digest[:8]}")
        self._pending[digest] = thread
        thread.start()
        self.evict(keep=digest)
        return final

    def flush(self) -> None:
        """Wait until every entry this process wrote is durable and marked complete."""
        for thread in list(self._pending.values()):
            thread.join()

    def _make_durable(self, path: Path, info: dict[str, object]) -> None:
        try:
            for dirpath, _, files in os.walk(path):
                for name in files:
                    fd = os.open(Path(dirpath) / name, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            tmp = path / f"{MARKER}.{uuid.uuid4().hex[:6]}"
            tmp.write_text(json.dumps(info))
            os.replace(tmp, path / MARKER)
            (path / SYNCING).unlink(missing_ok=True)
            dir_fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except FileNotFoundError:
            pass  # evicted meanwhile
        finally:
            self._pending.pop(path.name, None)

    def _being_synced(self, path: Path, manifest: Manifest) -> bool:
        """True while a live process on this boot is syncing a complete, verified directory."""
        try:
            note = json.loads((path / SYNCING).read_text())
        except (OSError, ValueError):
            return False
        if note.get("boot_id") != _boot_id():
            return False
        try:
            os.kill(int(note.get("pid", -1)), 0)
        except (OSError, ValueError):
            return False
        try:
            return all((path / f.path).stat().st_size == f.size for f in manifest.files)
        except FileNotFoundError:
            return False

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
            if entry.digest == keep or entry.digest in self._pending:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size
            removed.append(entry.digest)
        for leftover in self.root.glob(".staging-*"):  # interrupted materializations
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
        return removed

    def verify_entry(self, ref: str) -> bool:
        """Re-hash every file of a cached version against the manifest's whole-file digests."""
        manifest = self.registry.manifest(ref)
        path = self.root / manifest.digest
        if not (self._complete(path, manifest) or self._being_synced(path, manifest)):
            return False
        return all(file_checksum(path / entry.path, entry.checksum[0]) == entry.checksum[1] for entry in manifest.files)

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
