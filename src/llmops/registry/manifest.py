"""The manifest of a model version: every file, and for safetensors files every tensor.

The manifest is canonical JSON stored as a blob; its BLAKE3 digest is the version's identity (the model
cache is keyed by it, signatures sign it). Small files are whole blobs. A safetensors file is its header
bytes (one blob, byte-exact, so the file can be rebuilt identically) plus one entry per tensor with the
tensor's byte range in the file and the digest of its raw bytes.

Each file also records a digest of its whole content, for end-to-end checks of a rebuilt file (the model
cache's ``verify_entry``, the REST download's header). Schema 2 records BLAKE3, like every other digest in
the store; schema 1 recorded SHA-256. Why the change: one file's SHA-256 is a sequential pass at about
230 MB/s per core on CPUs without SHA extensions, and it was most of an import's CPU time (5.3 of 9.8 CPU
seconds for a 1.23 GB model, benchmarks/BENCHMARKS.md); BLAKE3 is several times cheaper per byte, spreads one
file over all cores, and for a small file it is the blob digest the store computes anyway. Schema 1
manifests stay readable and keep their digests: a file's unset digest field is left out of the canonical
JSON, so a stored manifest re-serializes to the very bytes it was stored as. Whoever needs a file's SHA-256
(to compare with a hub's listing) computes it from the pulled file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from llmops.blobs.digest import digest_bytes, digest_file

MANIFEST_SCHEMA = 2
FILE_DIGESTS = ("blake3", "sha256")  # the whole-file digest fields; only the one a schema uses is written


class TensorEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    digest: str


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    size: int
    blake3: str | None = None  # schema 2
    sha256: str | None = None  # schema 1
    kind: Literal["blob", "safetensors"]
    blob: str | None = None  # kind == blob
    header_blob: str | None = None  # kind == safetensors
    tensors: tuple[TensorEntry, ...] = ()

    @model_validator(mode="after")
    def _has_a_digest(self) -> FileEntry:
        if self.blake3 is None and self.sha256 is None:
            raise ValueError(f"file {self.path!r} has no digest (blake3 or sha256)")
        return self

    @property
    def checksum(self) -> tuple[str, str]:
        """``(algorithm, hex digest)`` of the whole file: BLAKE3 when recorded, else SHA-256 (schema 1)."""
        if self.blake3 is not None:
            return "blake3", self.blake3
        assert self.sha256 is not None
        return "sha256", self.sha256


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = MANIFEST_SCHEMA
    files: tuple[FileEntry, ...]

    def canonical(self) -> bytes:
        data = self.model_dump(mode="json")
        for entry in data["files"]:
            for name in FILE_DIGESTS:
                if entry[name] is None:
                    del entry[name]
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return digest_bytes(self.canonical())

    def tensors(self) -> dict[str, tuple[str, TensorEntry]]:
        """tensor name -> (file path, entry), over all safetensors files."""
        return {t.name: (f.path, t) for f in self.files for t in f.tensors}

    @property
    def logical_bytes(self) -> int:
        return sum(f.size for f in self.files)


def file_checksum(path: Path, algorithm: str) -> str:
    """A file's digest under ``algorithm`` (a :attr:`FileEntry.checksum` algorithm)."""
    if algorithm == "blake3":
        return digest_file(path)
    if algorithm != "sha256":
        raise ValueError(f"unknown file digest algorithm {algorithm!r}")
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            sha.update(chunk)
    return sha.hexdigest()
