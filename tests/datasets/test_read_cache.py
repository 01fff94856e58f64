"""Reads of a version share one verified local copy: reused, never truncated, evicted least recently used
beyond the cap, and never made from a corrupted blob."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops.datasets import read_cache
from llmops.errors import DataCorrupted
from llmops.platform import Platform
from llmops.security.actor import Actor
from tests.datasets.conftest import TEXT_ROWS, write_jsonl


def test_reads_reuse_one_verified_copy(embedded_platform: Platform, admin: Actor, text_jsonl: Path) -> None:
    service = embedded_platform.datasets
    version = service.import_path(admin, text_jsonl, name="t")
    with service.open_parquet(version.ref) as first:
        inode = first.stat().st_ino
    assert service.head(version.ref, 1)[0]["text"] == TEXT_ROWS[0]["text"]
    with service.open_parquet(version.ref) as again:
        assert again.stat().st_ino == inode and again.stat().st_mode & 0o222 == 0  # the same read-only file
    assert [p.name for p in service.read_cache.root.iterdir()] == [f"{version.blob_digest}.parquet"]


def test_least_recently_used_copies_go_beyond_the_cap(
    embedded_platform: Platform, admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = embedded_platform.datasets
    refs = [
        service.import_path(admin, write_jsonl(tmp_path / f"{i}.jsonl", [{"text": f"row {i}"}]), name=f"d{i}").ref
        for i in range(3)
    ]
    monkeypatch.setattr(read_cache, "GRACE_SECONDS", 0.0)
    for ref in refs:
        service.head(ref, 1)
    files = sorted(service.read_cache.root.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
    assert len(files) == 3
    for age, path in enumerate(files):  # make the order unambiguous: d0 oldest
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    service.read_cache.cap_bytes = files[0].stat().st_size * 2
    service.head(refs[0], 1)  # d0 is used again (newest now), so d1 is the least recently used
    removed = service.read_cache.evict()
    assert [p.name for p in removed] == [files[1].name]
    monkeypatch.setattr(read_cache, "GRACE_SECONDS", 3600.0)
    service.head(refs[2], 1)
    service.read_cache.cap_bytes = 0
    assert service.read_cache.evict() == []  # both left were used within the grace period
    assert len(list(service.read_cache.root.glob("*.parquet"))) == 2


def test_a_corrupted_blob_leaves_no_copy(embedded_platform: Platform, admin: Actor, text_jsonl: Path) -> None:
    service = embedded_platform.datasets
    version = service.import_path(admin, text_jsonl, name="t")
    blob = Path(embedded_platform.blobs.path(version.blob_digest))  # type: ignore[attr-defined]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DataCorrupted):
        service.head(version.ref, 1)
    assert list(service.read_cache.root.iterdir()) == []
