"""Writes blobs, artifacts and metrics as fast as it can until it is killed.

Used by ``tests/integration/test_crash_safety.py``. The platform comes from the ``LLMOPS_*``
environment. Output, one line per acknowledged write (printed only after the write returned):

    run <run_id> <pid>
    artifact <path> <digest>      an artifact whose blob and metadata are committed
    orphan <digest>               a blob put without any metadata (what gc must remove)
    stalling <digest>             a write is about to stall half-way; the bytes have this digest
    mid-write                     the stalled write has started storing and will never finish

``--stall-after N`` makes the N-th write stall half-way so that the parent can kill it at a known
point: on a local store while the temporary file is half written, on S3 after every part of a
multipart upload is sent but before the upload is completed.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
from typing import Any

from llmops.blobs.digest import digest_bytes
from llmops.blobs.s3 import S3BlobStore
from llmops.platform import Platform
from llmops.settings import Settings

MIB = 1 << 20


def emit(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


class StallingReader(io.RawIOBase):
    """Hands out half of ``data``, announces ``mid-write``, then blocks forever."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        half = len(self._data) // 2
        if self._pos >= half:
            emit("mid-write")
            while True:
                time.sleep(3600)
        n = min(len(buffer), half - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def stall(platform: Platform, rng: random.Random) -> None:
    data = rng.randbytes(12 * MIB)  # above the S3 multipart threshold used by the tests: two parts
    emit("stalling", digest_bytes(data))
    if isinstance(platform.blobs, S3BlobStore):
        # Everything is spooled and the parts are sent; block right before the upload is completed.
        def block(**_: Any) -> None:
            emit("mid-write")
            while True:
                time.sleep(3600)

        platform.blobs._client.meta.events.register("before-call.s3.CompleteMultipartUpload", block)
        platform.blobs.put(io.BytesIO(data))
    else:
        platform.blobs.put(io.BufferedReader(StallingReader(data)))
    raise AssertionError("a stalled write returned")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stall-after", type=int, default=-1)
    parser.add_argument("--max-size", type=int, default=2 * MIB)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    platform = Platform(Settings(), migrate=False)
    run = platform.start_run(kind="train", name=args.name)
    emit("run", run.id, os.getpid())
    i = 0
    while True:
        if i == args.stall_after:
            stall(platform, rng)
        data = rng.randbytes(rng.randint(1, args.max_size))
        if i % 3 == 2:
            info = platform.blobs.put(io.BytesIO(data))
            emit("orphan", info.digest)
        else:
            path = f"step-{i:05d}/weights.bin"
            out = platform.tracking.log_artifact(run.actor, run.id, path, io.BytesIO(data))
            emit("artifact", path, out.digest)
        run.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
        i += 1


if __name__ == "__main__":
    main()
