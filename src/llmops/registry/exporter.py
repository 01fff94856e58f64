"""Rebuilding a version's files byte for byte, verifying everything on the way (the load path).

Files are written into a temporary directory next to the destination and renamed into place only when
every tensor digest and every file's SHA-256 matched: a corrupted store never yields a partial or wrong
model directory, and the error names the file and the tensor.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from llmops.blobs.base import BlobStore
from llmops.blobs.io import read_bytes
from llmops.errors import Conflict, DataCorrupted
from llmops.registry.manifest import FileEntry, Manifest, TensorEntry
from llmops.registry.tensorstore import CHUNK

TensorReader = Callable[[TensorEntry, str], Iterator[bytes]]  # (entry, "file:tensor") -> verified chunks
Progress = Callable[[str, int, int], None]


def file_chunks(blobs: BlobStore, entry: FileEntry, read_tensor: TensorReader) -> Iterator[bytes]:
    """The bytes of one file of a manifest, rebuilt in order; every tensor is verified as it passes."""
    if entry.kind == "blob":
        assert entry.blob is not None
        with blobs.open(entry.blob) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
        return
    assert entry.header_blob is not None
    yield read_bytes(blobs, entry.header_blob)
    for tensor in sorted(entry.tensors, key=lambda t: t.begin):
        yield from read_tensor(tensor, f"{entry.path}:{tensor.name}")


def materialize(
    blobs: BlobStore, manifest: Manifest, dest: Path, read_tensor: TensorReader, *, progress: Progress | None = None
) -> Path:
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} exists and is not an empty directory; choose a new destination")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    total = manifest.logical_bytes
    done = 0
    try:
        for entry in manifest.files:
            target = staging / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            sha = hashlib.sha256()
            with open(target, "wb") as out:
                for chunk in file_chunks(blobs, entry, read_tensor):
                    sha.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress("writing", min(done, total), total)
                out.flush()
                os.fsync(out.fileno())
            if sha.hexdigest() != entry.sha256:
                raise DataCorrupted(
                    f"{entry.path}: rebuilt file has SHA-256 {sha.hexdigest()}, the manifest says {entry.sha256}",
                    details={"file": entry.path},
                )
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest
