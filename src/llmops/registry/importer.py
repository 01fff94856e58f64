"""Turning a model directory into stored blobs and a manifest (the blob half of an import).

Order of work, so that nothing is stored from a file that will be refused:
1. scan the directory (names, symlinks, pickles, JSON, shard index) and validate every safetensors header;
2. hash every tensor and every whole file (BLAKE3; a small file's digest is its blob's);
3. store what the registry does not have yet: tensors (raw, zstd, or XOR delta against the base version's
   tensor of the same name, shape and dtype), safetensors headers and small files.
Steps 2 and 3 are one pass for an incompressible tensor with no base on the local store: the kernel copy
is hashed once and its digest decides dedup afterwards (``tensorstore.store_unhashed``).
The metadata half (version row, references, audit) is ``RegistryService``'s, in one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from llmops.blobs.base import BlobStore
from llmops.blobs.digest import digest_file
from llmops.blobs.io import put_bytes, put_path
from llmops.errors import InvalidModel
from llmops.registry.formats import ModelDirectory
from llmops.registry.manifest import FileEntry, Manifest, TensorEntry
from llmops.registry.safetensors_file import SafetensorsLayout, TensorSpec, read_layout_path
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
STORE_THREADS = 2


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


def prepare(
    blobs: BlobStore,
    directory: ModelDirectory,
    layouts: dict[str, SafetensorsLayout],
    *,
    known_tensors: Callable[[Collection[str]], set[str]],
    base_tensors: dict[str, BaseTensor],
    progress: Progress | None = None,
) -> PreparedImport:
    """Store what the registry lacks and build the manifest. ``known_tensors(digests)`` returns those of
    ``digests`` the registry already holds (one query for many)."""
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
            # the blob is the whole file: its digest is the file's
            files.append(FileEntry(path=rel, size=size, blake3=blob.digest, kind="blob", blob=blob.digest))
        else:
            header = put_bytes(blobs, layout.header_bytes)
            prepared.blob_digests.add(header.digest)
            entries: list[TensorEntry] = []
            # The whole file's digest runs on another thread (BLAKE3 releases the GIL) while this one hashes
            # tensors and stores them: it is off the critical path instead of adding a pass to it.
            file_pool = ThreadPoolExecutor(max_workers=1)
            file_digest = file_pool.submit(digest_file, path)
            # Tensors stored in one pass (no base) are stored STORE_THREADS at a time: the kernel copy of one
            # overlaps the hashing of another. Results are taken in file order, so the manifest and the
            # dedup decisions do not depend on timing.
            store_pool = ThreadPoolExecutor(max_workers=STORE_THREADS)
            fd = os.open(path, os.O_RDONLY)
            try:
                usable_bases = [_usable_base(base_tensors.get(spec.name), spec) for spec in layout.tensors]
                jobs: list[Future[StoredTensor | None] | None] = [
                    None
                    if usable
                    else store_pool.submit(store_unhashed, blobs, file_range(fd, spec.begin, spec.end), spec.nbytes)
                    for spec, usable in zip(layout.tensors, usable_bases, strict=True)
                ]
                # one-pass tensors whose novelty is asked of the database once per file, at the end
                pending: dict[str, StoredTensor] = {}
                for spec, usable, job in zip(layout.tensors, usable_bases, jobs, strict=True):
                    source = file_range(fd, spec.begin, spec.end)
                    # Without a base to delta against, an incompressible tensor is stored in the same pass
                    # that hashes it; everything else is hashed first so that known tensors store nothing.
                    stored = job.result() if job else None
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
                    if digest in prepared.new_tensors or digest in pending:
                        prepared.reused_tensors += 1
                    elif stored:
                        pending[digest] = stored
                    elif known_tensors({digest}):
                        prepared.reused_tensors += 1
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
                known = known_tensors(pending.keys()) if pending else set()
                for digest, stored in pending.items():
                    if digest in known:
                        prepared.reused_tensors += 1
                    else:
                        prepared.new_tensors[digest] = stored
            finally:
                store_pool.shutdown(wait=True, cancel_futures=True)  # before the descriptor they read closes
                os.close(fd)
                file_pool.shutdown(wait=True)
            files.append(
                FileEntry(
                    path=rel,
                    size=size,
                    blake3=file_digest.result(),
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


def _usable_base(base: BaseTensor | None, spec: TensorSpec) -> BaseTensor | None:
    """The base tensor when a delta against it is possible (same shape and dtype)."""
    return base if base and base.shape == spec.shape and base.dtype == spec.dtype else None


def chunks_of(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]
