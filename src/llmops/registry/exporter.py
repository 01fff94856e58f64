"""Rebuilding a version's files byte for byte, verifying everything on the way (the load path).

Files are written into a temporary directory next to the destination and renamed into place only when
every piece verified: a corrupted store never yields a partial or wrong model directory, and the error
names the file and the tensor. What is verified: the manifest is read from a content-addressed blob; a
small file and a safetensors header are blobs checked against their BLAKE3 digest as they are read; each
tensor is checked against its digest; the tensors tile the file exactly (checked at import). Together these
determine every byte of the file, so the whole-file digest (sent by the REST download and re-checked by
``ModelCache.verify_entry``) is not recomputed here, which keeps a load
close to a plain copy. Raw tensors on a local store are copied inside the kernel while their digest is
checked from memory in parallel (``TensorCopier``).
"""

from __future__ import annotations

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
# Writes a tensor straight into a file descriptor at its current position when it can (verified); False when
# the generic path must be used.
TensorCopier = Callable[[TensorEntry, int, str], bool]
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
    blobs: BlobStore,
    manifest: Manifest,
    dest: Path,
    read_tensor: TensorReader,
    *,
    copy_tensor: TensorCopier | None = None,
    progress: Progress | None = None,
    durable: bool = True,
) -> Path:
    """Write every file into a staging directory, verified, then rename it to ``dest``.

    ``durable=False`` skips the per-file fsync; the model cache syncs in the background instead and marks
    the entry complete only afterwards.
    """
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
            with open(target, "wb", buffering=0) as out:
                fd = out.fileno()
                if entry.kind == "blob":
                    pieces: Iterator[bytes] = file_chunks(blobs, entry, read_tensor)
                    for chunk in pieces:
                        out.write(chunk)
                else:
                    assert entry.header_blob is not None
                    out.write(read_bytes(blobs, entry.header_blob))
                    for tensor in sorted(entry.tensors, key=lambda t: t.begin):
                        what = f"{entry.path}:{tensor.name}"
                        if copy_tensor is None or not copy_tensor(tensor, fd, what):
                            for chunk in read_tensor(tensor, what):
                                out.write(chunk)
                        done += tensor.end - tensor.begin
                        if progress:
                            progress("writing", min(done, total), total)
                if durable:
                    os.fsync(fd)
            size = target.stat().st_size
            if size != entry.size:
                raise DataCorrupted(
                    f"{entry.path}: rebuilt file has {size} bytes, the manifest says {entry.size}",
                    details={"file": entry.path},
                )
            if entry.kind == "blob":
                done += entry.size
                if progress:
                    progress("writing", min(done, total), total)
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest
