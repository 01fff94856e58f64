"""BLAKE3 content digests.

BLAKE3 is several times faster than SHA-256 on CPUs and hashes large inputs on several threads, which
matters when every tensor of a multi-gigabyte model is hashed on import and verified on load.
A digest is written as 64 lowercase hex characters.
"""

from __future__ import annotations

import re
from pathlib import Path

from blake3 import blake3

from llmops.errors import InvalidInput

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK_SIZE = 8 * 1024 * 1024


def new_hasher() -> blake3:
    # AUTO lets blake3 spread one large update over the cores.
    return blake3(max_threads=blake3.AUTO)


def digest_bytes(data: bytes | memoryview) -> str:
    return new_hasher().update(data).hexdigest()


def digest_file(path: Path | str) -> str:
    """The BLAKE3 digest of a whole file, read in ``CHUNK_SIZE`` pieces (each hashed on all cores, GIL
    released). Not ``update_mmap``: a mapped file counts in the reader's resident set, which would put a
    whole multi-gigabyte shard into an import's peak RSS."""
    hasher = new_hasher()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            hasher.update(view[:n])
    return hasher.hexdigest()


def check_digest(value: str) -> str:
    if not DIGEST_RE.match(value):
        raise InvalidInput(f"not a blob digest: {value[:80]!r} (expected 64 lowercase hex characters)")
    return value
