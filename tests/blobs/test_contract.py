"""The BlobStore contract, run on the local store and on S3 (a real S3-protocol server)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from llmops.blobs.base import BlobStore
from llmops.blobs.digest import digest_bytes
from llmops.blobs.io import get_path, put_bytes, put_path, read_bytes, verify
from llmops.errors import DataCorrupted, InvalidInput, NotFound


def test_put_is_content_addressed_and_idempotent(blob_store: BlobStore) -> None:
    a = put_bytes(blob_store, b"hello world")
    b = put_bytes(blob_store, b"hello world")
    assert a.digest == b.digest == digest_bytes(b"hello world")
    assert a.size == 11
    assert [x.digest for x in blob_store.iter_blobs()] == [a.digest]
    assert read_bytes(blob_store, a.digest) == b"hello world"


def test_empty_blob(blob_store: BlobStore) -> None:
    info = put_bytes(blob_store, b"")
    assert info.size == 0
    assert read_bytes(blob_store, info.digest) == b""


def test_large_blob_streams_and_round_trips(blob_store: BlobStore) -> None:
    # 12 MiB: above the S3 fixture's 5 MiB multipart threshold and the local store's chunk size.
    data = os.urandom(12 * 1024 * 1024)
    info = blob_store.put(io.BytesIO(data))
    assert info.size == len(data)
    stat = blob_store.stat(info.digest)
    assert stat is not None and stat.size == len(data)
    with blob_store.open(info.digest) as fh:
        first = fh.read(1000)
        rest = fh.read()
    assert first + rest == data


def test_stat_and_delete(blob_store: BlobStore) -> None:
    info = put_bytes(blob_store, b"x" * 100)
    stat = blob_store.stat(info.digest)
    assert stat is not None and stat.size == 100 and stat.modified <= time.time() + 5
    blob_store.delete(info.digest)
    assert blob_store.stat(info.digest) is None
    with pytest.raises(NotFound, match=info.digest):
        blob_store.open(info.digest)


def test_missing_and_malformed_digests(blob_store: BlobStore) -> None:
    assert blob_store.stat("0" * 64) is None
    with pytest.raises(NotFound):
        blob_store.open("0" * 64)
    with pytest.raises(InvalidInput, match="not a blob digest"):
        blob_store.open("../etc/passwd")


def test_iter_blobs_lists_everything(blob_store: BlobStore) -> None:
    digests = {put_bytes(blob_store, f"blob {i}".encode()).digest for i in range(25)}
    assert {b.digest for b in blob_store.iter_blobs()} == digests


def test_ping(blob_store: BlobStore) -> None:
    blob_store.ping()


def test_corruption_is_detected_on_read(blob_store: BlobStore, request: pytest.FixtureRequest) -> None:
    good = put_bytes(blob_store, b"original content")
    _overwrite(blob_store, good.digest, b"tampered content", request)
    with pytest.raises(DataCorrupted, match=good.digest):
        read_bytes(blob_store, good.digest)
    assert verify(blob_store, good.digest) is False


def _overwrite(store: BlobStore, digest: str, data: bytes, request: pytest.FixtureRequest) -> None:
    """Corrupt a stored blob behind the store's back, as a disk fault or an operator would."""
    from llmops.blobs.local import LocalBlobStore
    from llmops.blobs.s3 import S3BlobStore

    if isinstance(store, LocalBlobStore):
        path = store.path(digest)
        os.chmod(path, 0o644)
        path.write_bytes(data)
    else:
        assert isinstance(store, S3BlobStore)
        store._client.put_object(Bucket=store.bucket, Key=store.key(digest), Body=data)


def test_put_path_and_get_path_round_trip(blob_store: BlobStore, tmp_path: Path) -> None:
    """The file-to-blob and blob-to-file paths (kernel copy on the local store) keep content and digests."""
    src = tmp_path / "src.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    info = put_path(blob_store, src)
    assert info.digest == digest_bytes(data) and info.size == len(data)
    assert put_path(blob_store, src).digest == info.digest  # idempotent
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert put_path(blob_store, empty).digest == digest_bytes(b"")
    dest = tmp_path / "out.bin"
    assert get_path(blob_store, info.digest, dest) == len(data)
    assert dest.read_bytes() == data


def test_get_path_of_a_corrupted_blob_leaves_no_file(
    blob_store: BlobStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    info = put_bytes(blob_store, b"good bytes" * 1000)
    _overwrite(blob_store, info.digest, b"bad bytes!" * 1000, request)
    dest = tmp_path / "out.bin"
    with pytest.raises(DataCorrupted, match=info.digest):
        get_path(blob_store, info.digest, dest)
    assert not dest.exists()


@pytest.mark.parametrize("fsync", [True, False])
def test_local_store_fsync_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    """``LLMOPS_STORE_FSYNC=false`` leaves write-back to the OS: no fsync on any write path, same blobs."""
    from llmops.blobs.local import LocalBlobStore
    from llmops.platform import build_blob_store
    from llmops.settings import Settings

    store = build_blob_store(Settings(home=tmp_path / "home", store_fsync=fsync))
    assert isinstance(store, LocalBlobStore) and store.fsync is fsync
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    data = os.urandom(3 * 1024 * 1024 + 7)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with open(source, "rb") as fh:
        digests = {
            store.put(io.BytesIO(data)).digest,
            put_path(store, source).digest,
            store.put_range(fh.fileno(), 0, len(data)).digest,
        }
    assert digests == {digest_bytes(data)}
    assert read_bytes(store, digest_bytes(data)) == data
    # durable: put syncs its file and the directory, each kernel copy its temporary file
    assert len(synced) == 4 if fsync else synced == []
