"""Turning a model directory into stored blobs and a manifest (the blob half of an import).

Order of work, so that nothing is stored from a file that will be refused:
1. scan the directory (names, symlinks, pickles, JSON, shard index) and validate every safetensors header;
2. hash every tensor (BLAKE3) and every file (SHA-256, for byte-exact export checks);
3. store what the registry does not have yet: tensors (raw, zstd, or XOR delta against the base version's
   tensor of the same name, shape and dtype), safetensors headers and small files.
Steps 2 and 3 are one pass for an incompressible tensor with no base on the local store: the kernel copy
is hashed once and its digest decides dedup afterwards (``tensorstore.store_unhashed``).
The metadata half (version row, references, audit) is ``RegistryService``'s, in one transaction.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from llmops.blobs.base import BlobStore
from llmops.blobs.io import put_bytes, put_path
from llmops.errors import InvalidModel
from llmops.registry.formats import ModelDirectory
from llmops.registry.manifest import FileEntry, Manifest, TensorEntry
from llmops.registry.safetensors_file import SafetensorsLayout, read_layout_path
from llmops.registry.tensorstore import (
    CHUNK,
    ChunkSource,
    StoredTensor,
    encode,
    file_range,
    hash_chunks,
    store_unhashed,
)

Progress = Callable[[str, int, int], None]  # (stage, done bytes, total bytes)


@dataclass
class BaseTensor:
    digest: str
    depth: int
    dtype: str
    shape: tuple[int, ...]
    source: ChunkSource  # the decoded (verified) bytes of the base tensor


@dataclass
class PreparedImport:
    manifest: Manifest
    new_tensors: dict[str, StoredTensor] = field(default_factory=dict)
    reused_tensors: int = 0
    blob_digests: set[str] = field(default_factory=set)  # small files, headers, the manifest
    parameters: int = 0
    dtype: str | None = None


def validate(directory: ModelDirectory) -> dict[str, SafetensorsLayout]:
    """Validate every safetensors file before anything is stored."""
    if directory.pickles:
        names = ", ".join(directory.pickles[:5])
        raise InvalidModel(
            f"refusing pickle-based weights ({names}): loading a pickle can run arbitrary code. "
            "Re-import with --convert-pickle to convert them to safetensors in a separate process "
            "(torch.load with weights_only=True), or remove them.",
            details={"files": directory.pickles, "rule": "pickle"},
        )
    layouts = {rel: read_layout_path(directory.files[rel], name=rel) for rel in directory.safetensors}
    if not layouts:
        raise InvalidModel(
            f"{directory.root} has no .safetensors weights: a model directory needs *.safetensors files "
            "(with config.json, adapter_config.json or modules.json)",
            details={"rule": "no_weights"},
        )
    return layouts


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


def prepare(
    blobs: BlobStore,
    directory: ModelDirectory,
    layouts: dict[str, SafetensorsLayout],
    *,
    known_tensor: Callable[[str], bool],
    base_tensors: dict[str, BaseTensor],
    progress: Progress | None = None,
) -> PreparedImport:
    total = sum(p.stat().st_size for p in directory.files.values())
    done = 0
    files: list[FileEntry] = []
    prepared = PreparedImport(manifest=Manifest(files=()))
    dtype_bytes: dict[str, int] = {}
    for rel in sorted(directory.files):
        path = directory.files[rel]
        size = path.stat().st_size
        layout = layouts.get(rel)
        if layout is None:
            blob = put_path(blobs, path)
            prepared.blob_digests.add(blob.digest)
            files.append(FileEntry(path=rel, size=size, sha256=_sha256(path), kind="blob", blob=blob.digest))
        else:
            header = put_bytes(blobs, layout.header_bytes)
            prepared.blob_digests.add(header.digest)
            entries: list[TensorEntry] = []
            # The file's SHA-256 runs on another thread (hashlib releases the GIL) while this one hashes
            # tensors and stores them: it is off the critical path instead of adding a pass to it.
            sha_pool = ThreadPoolExecutor(max_workers=1)
            sha_future = sha_pool.submit(_sha256, path)
            fd = os.open(path, os.O_RDONLY)
            try:
                for spec in layout.tensors:
                    source = file_range(fd, spec.begin, spec.end)
                    base = base_tensors.get(spec.name)
                    usable = base if base and base.shape == spec.shape and base.dtype == spec.dtype else None
                    # Without a base to delta against, an incompressible tensor is stored in the same pass
                    # that hashes it; everything else is hashed first so that known tensors store nothing.
                    stored = None if usable else store_unhashed(blobs, source, spec.nbytes)
                    digest = stored.digest if stored else hash_chunks(source)[0]
                    entries.append(
                        TensorEntry(
                            name=spec.name,
                            dtype=spec.dtype,
                            shape=spec.shape,
                            begin=spec.begin,
                            end=spec.end,
                            digest=digest,
                        )
                    )
                    n_elements = 1
                    for dim in spec.shape:
                        n_elements *= dim
                    prepared.parameters += n_elements
                    dtype_bytes[spec.dtype] = dtype_bytes.get(spec.dtype, 0) + spec.nbytes
                    if digest in prepared.new_tensors or known_tensor(digest):
                        prepared.reused_tensors += 1
                    elif stored:
                        prepared.new_tensors[digest] = stored
                    else:
                        prepared.new_tensors[digest] = encode(
                            blobs,
                            source,
                            digest,
                            spec.nbytes,
                            base=(usable.digest, usable.depth, usable.source) if usable else None,
                        )
                    done += spec.nbytes
                    if progress:
                        progress("storing tensors", done, total)
            finally:
                os.close(fd)
                sha_pool.shutdown(wait=True)
            files.append(
                FileEntry(
                    path=rel,
                    size=size,
                    sha256=sha_future.result(),
                    kind="safetensors",
                    header_blob=header.digest,
                    tensors=tuple(entries),
                )
            )
        done += size if layout is None else len(layout.header_bytes)
        if progress:
            progress("storing files", min(done, total), total)
    prepared.manifest = Manifest(files=tuple(files))
    if dtype_bytes:
        prepared.dtype = max(dtype_bytes.items(), key=lambda kv: kv[1])[0]
    return prepared


def chunks_of(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]
