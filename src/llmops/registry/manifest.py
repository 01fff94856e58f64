"""The manifest of a model version: every file, and for safetensors files every tensor.

The manifest is canonical JSON stored as a blob; its BLAKE3 digest is the version's identity (the model
cache is keyed by it, signatures sign it). Small files are whole blobs. A safetensors file is its header
bytes (one blob, byte-exact, so the file can be rebuilt identically) plus one entry per tensor with the
tensor's byte range in the file and the digest of its raw bytes. Each file also records its SHA-256, the
digest the rest of the ecosystem (Hugging Face, pip, MLflow) uses, checked when the file is rebuilt.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from llmops.blobs.digest import digest_bytes

MANIFEST_SCHEMA = 1


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
    sha256: str
    kind: Literal["blob", "safetensors"]
    blob: str | None = None  # kind == blob
    header_blob: str | None = None  # kind == safetensors
    tensors: tuple[TensorEntry, ...] = ()


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = MANIFEST_SCHEMA
    files: tuple[FileEntry, ...]

    def canonical(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        return digest_bytes(self.canonical())

    def tensors(self) -> dict[str, tuple[str, TensorEntry]]:
        """tensor name -> (file path, entry), over all safetensors files."""
        return {t.name: (f.path, t) for f in self.files for t in f.tensors}

    @property
    def logical_bytes(self) -> int:
        return sum(f.size for f in self.files)
