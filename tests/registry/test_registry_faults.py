"""The registry under faults: SIGKILL mid-import, concurrent importers, corrupted blobs, hostile and broken inputs.

Why: an import writes many blobs before its one metadata transaction, several importers (threads, the server,
training jobs in other processes) share tensors, and the store and the model files come from outside. Each test
makes one of those faults happen for real and checks the promise that goes with it:

- a process SIGKILLed half-way through an import leaves no version, only unreferenced blobs that ``store gc``
  removes exactly, and the same import then succeeds and pulls back byte for byte;
- importers racing on shared tensors and on the same model names lose and duplicate nothing: every version
  pulls back byte-identical, each tensor content is stored once, version numbers are contiguous;
- a flipped byte in a stored tensor fails the pull with ``DataCorrupted`` naming the file and the tensor, leaves
  no partial directory and no cache entry, and ``store fsck`` names the blob;
- a pickle that runs code when loaded is refused with and without ``--convert-pickle`` and never runs, while a
  legitimate pickle converts to the same tensors;
- every broken directory and every broken safetensors file is refused naming the file and the rule, before
  anything is stored.

The crash and concurrency tests run child processes; this module is also their program
(``python tests/registry/test_registry_faults.py import-slow|import-jobs …``), with the platform opened from
the ``LLMOPS_*`` environment exactly as a user's job would open it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file
from sqlalchemy import distinct, func, select

from llmops.blobs.local import LocalBlobStore
from llmops.blobs.refs import referenced
from llmops.blobs.s3 import S3BlobStore
from llmops.blobs.tables import BlobRef
from llmops.errors import DataCorrupted, InvalidModel, NotFound
from llmops.platform import Platform
from llmops.registry.tables import TensorObject, VersionTensor
from llmops.security.actor import Actor
from llmops.security.roles import Role
from llmops.settings import Settings
from tests.integration.workers.process import Worker, run_together
from tests.registry.corpus import BROKEN

MIB = 1 << 20
BIG_SHARDS = 2
BIG_TENSORS_PER_SHARD = 24  # 1 MiB each: the import takes long enough to be killed in the middle


# --- helpers -----------------------------------------------------------------------------------------------
def file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def stored(platform: Platform) -> set[str]:
    return {b.digest for b in platform.blobs.iter_blobs()}


def referenced_digests(platform: Platform) -> set[str]:
    with platform.db.read() as session:
        return set(referenced(session))


def tensor_blob(platform: Platform, ref: str, encoding: str) -> tuple[str, str, str]:
    """(file, tensor name, blob digest) of the first tensor of ``ref`` stored with ``encoding``."""
    detail = platform.registry.get_version(ref)
    tensor = next((t for t in detail.tensors if t.encoding == encoding), None)
    assert tensor is not None, f"{ref} has no {encoding} tensor: {sorted({t.encoding for t in detail.tensors})}"
    with platform.db.read() as session:
        blob = session.scalar(select(TensorObject.blob_digest).where(TensorObject.digest == tensor.digest))
    assert blob is not None
    return tensor.file, tensor.name, blob


def flip_byte(platform: Platform, digest: str, offset: int) -> None:
    """Flip one bit of a stored blob behind the store's back, as a disk fault would."""
    store = platform.blobs
    if isinstance(store, LocalBlobStore):
        path = store.path(digest)
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        os.chmod(path, 0o644)
        path.write_bytes(bytes(data))
    else:
        assert isinstance(store, S3BlobStore)
        body = bytearray(store._client.get_object(Bucket=store.bucket, Key=store.key(digest))["Body"].read())
        body[offset] ^= 0x01
        store._client.put_object(Bucket=store.bucket, Key=store.key(digest), Body=bytes(body))


def write_model(root: Path, shards: dict[str, dict[str, np.ndarray[Any, Any]]]) -> Path:
    """A Hugging Face style directory: config.json, the shards, and an index when there is more than one."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(root / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
    if len(shards) > 1:
        (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return root


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 MiB of float32 weights in two shards (incompressible enough to be stored one blob per tensor)."""
    rng = np.random.default_rng(7)
    shards = {
        f"model-{s + 1:05d}-of-{BIG_SHARDS:05d}.safetensors": {
            f"model.layers.{s * BIG_TENSORS_PER_SHARD + i}.mlp.weight": (
                rng.standard_normal((256, 1024), dtype=np.float32) * 0.02
            )
            for i in range(BIG_TENSORS_PER_SHARD)
        }
        for s in range(BIG_SHARDS)
    }
    return write_model(tmp_path_factory.mktemp("big") / "model", shards)


@pytest.fixture(scope="module")
def zstd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compressible tensor whose zstd blob is larger than the 8 MiB a blob is read in: a corrupted frame
    header is seen by the decompressor before the blob's own digest check can run at the end of the blob."""
    rng = np.random.default_rng(11)
    weight = rng.integers(0, 16, size=20 * MIB, dtype=np.uint8)  # 4 bits of entropy per byte: ~10 MiB of zstd
    return write_model(tmp_path_factory.mktemp("zstd") / "model", {"model.safetensors": {"big.weight": weight}})


# --- child-process programs --------------------------------------------------------------------------------
def emit(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


Job = tuple[str, str, str | None]  # (model name, directory key, base reference)


def run_jobs(platform: Platform, writer: str, jobs: list[Job], dirs: dict[str, str]) -> dict[str, Any]:
    """Import each ``(name, directory key, base)`` in order; exceptions are reported, not raised."""
    actor = Actor(name=writer, role=Role.admin, via="python")
    out: dict[str, Any] = {"writer": writer, "results": [], "errors": []}
    for name, key, base in jobs:
        try:
            report = platform.registry.import_model(actor, Path(dirs[key]), name=name, base=base)
        except Exception as exc:
            out["errors"].append(f"{writer} {name} {key} {base}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            continue
        out["results"].append(
            {
                "ref": report.version.ref,
                "key": key,
                "base": base,
                "reused": report.reused_existing_version,
                "version_base": report.version.base,
            }
        )
    return out


def worker_main(argv: list[str]) -> None:
    platform = Platform(Settings(), migrate=False)
    if argv[0] == "import-slow":  # import-slow PATH NAME: report each stored tensor, then "done REF"
        path, name = Path(argv[1]), argv[2]
        emit("started", os.getpid())
        report = platform.registry.import_model(
            Actor(name="killed", role=Role.admin, via="python"),
            path,
            name=name,
            progress=lambda stage, done, total: emit("progress", done, total, stage.replace(" ", "-")),
        )
        emit("done", report.version.ref)
    elif argv[0] == "import-jobs":  # import-jobs WRITER JOBS_JSON DIRS_JSON: "ready", wait for "go", result JSON
        writer, jobs, dirs = argv[1], json.loads(argv[2]), json.loads(argv[3])
        platform.db.ping()
        emit("ready")
        assert sys.stdin.readline().strip() == "go"
        emit(json.dumps(run_jobs(platform, writer, [tuple(j) for j in jobs], dirs)))
    else:
        raise SystemExit(f"unknown program {argv[0]!r}")
    platform.close()


# --- SIGKILL in the middle of an import --------------------------------------------------------------------
def test_sigkill_mid_import_leaves_only_orphans_that_gc_removes(
    settings: Settings, platform: Platform, admin: Actor, llama_dir: Path, big_dir: Path, tmp_path: Path
) -> None:
    platform.registry.import_model(admin, llama_dir, name="keep")
    keep = file_hashes(llama_dir)
    before = stored(platform)
    assert before == referenced_digests(platform)

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    after_tensors, delay = rng.randint(2, 8), rng.uniform(0.0, 0.02)
    context = f"seed {seed}: SIGKILL {delay * 1000:.0f} ms after the import stored {after_tensors} tensors"
    worker = Worker(__file__, settings, "import-slow", str(big_dir), "big")
    try:
        worker.wait_for("started", timeout=120)
        worker.wait_for("progress", count=after_tensors, timeout=120)
        time.sleep(delay)
        worker.kill()
    finally:
        worker.stop()
    assert worker.proc.returncode == -signal.SIGKILL, context
    progress = [line.split() for line in worker.lines if line.startswith("progress")]
    done, total = int(progress[-1][1]), int(progress[-1][2])
    assert done < total and not any(line.startswith("done") for line in worker.lines), (context, progress[-1])

    # No trace of the killed import in the metadata: no model, no version.
    assert [m.name for m in platform.registry.list_models()] == ["keep"], context
    with pytest.raises(NotFound):
        platform.registry.list_versions("big")
    with pytest.raises(NotFound):
        platform.registry.get_version("big")

    # Its blobs are all unreferenced; nothing referenced is missing or corrupted.
    now = stored(platform)
    orphans = now - referenced_digests(platform)
    assert orphans and before < now and orphans == now - before, context
    stats = platform.store.stats()
    assert (stats.unreferenced_blobs, stats.missing) == (len(orphans), 0)
    assert platform.store.fsck().clean

    # gc with no grace period removes exactly the orphans (and leftovers of the write that was cut off).
    report = platform.store.gc(grace_seconds=0)
    assert set(report.removed) == orphans
    assert stored(platform) == before
    stats = platform.store.stats()
    assert (stats.unreferenced_blobs, stats.missing, stats.blobs) == (0, 0, len(before))
    assert platform.store.fsck().clean
    if isinstance(platform.blobs, LocalBlobStore):
        assert not list((platform.blobs.root / "tmp").iterdir())
    assert file_hashes(platform.registry.pull("keep:1", tmp_path / "keep")) == keep

    # The same import now succeeds as version 1 and pulls back byte for byte.
    result = platform.registry.import_model(admin, big_dir, name="big")
    assert result.version.ref == "big:1" and not result.reused_existing_version
    assert result.new_tensors == BIG_SHARDS * BIG_TENSORS_PER_SHARD
    assert file_hashes(platform.registry.pull("big:1", tmp_path / "big")) == file_hashes(big_dir)
    assert platform.store.fsck().clean
    assert platform.store.stats().unreferenced_blobs == 0


# --- concurrent importers ----------------------------------------------------------------------------------
# Every writer starts on "shared" at once (the model row itself is contested), then imports under a name of its
# own, then into "twin", which several writers fill with the same and different content. "base" is llama_dir.
PLAN: dict[str, list[Job]] = {
    "t0": [("shared", "llama", None), ("t0-partial", "partial", "base:1"), ("twin", "merged", None)],
    "t1": [("shared", "partial", "base:1"), ("t1-merged", "merged", "base:1"), ("twin", "merged", "base:1")],
    "t2": [("shared", "merged", "base:1"), ("t2-llama", "llama", None), ("twin", "partial", None)],
    "p0": [("shared", "partial", None), ("p0-merged", "merged", "base:1"), ("twin", "merged", None)],
    "p1": [("shared", "llama", "base:1"), ("p1-partial", "partial", "base:1"), ("twin", "llama", "base:1")],
}


def test_concurrent_imports_of_shared_tensors(
    platform: Platform,
    admin: Actor,
    llama_dir: Path,
    llama_partial_dir: Path,
    lora_merged_dir: Path,
    tmp_path: Path,
) -> None:
    dirs = {"llama": str(llama_dir), "partial": str(llama_partial_dir), "merged": str(lora_merged_dir)}
    platform.registry.import_model(admin, llama_dir, name="base")
    threads_plan = {w: jobs for w, jobs in PLAN.items() if w.startswith("t")}
    procs = [
        Worker(__file__, platform.settings, "import-jobs", w, json.dumps(jobs), json.dumps(dirs))
        for w, jobs in PLAN.items()
        if w.startswith("p")
    ]
    work = [functools.partial(run_jobs, platform, w, jobs, dirs) for w, jobs in threads_plan.items()]
    results = run_together(procs, work, ready_timeout=120)

    assert sorted(r["writer"] for r in results) == sorted(PLAN)
    errors = [e for r in results for e in r["errors"]]
    assert not errors, "\n".join(errors[:3])
    imports = [x for r in results for x in r["results"]]
    assert len(imports) == sum(len(jobs) for jobs in PLAN.values())

    # Each reported version holds exactly the content that was imported; fresh versions record their base.
    source_of: dict[str, set[str]] = {}
    for x in imports:
        source_of.setdefault(x["ref"], set()).add(x["key"])
        if not x["reused"]:
            assert x["version_base"] == x["base"], x
    assert all(len(keys) == 1 for keys in source_of.values()), source_of
    hashes = {key: file_hashes(Path(path)) for key, path in dirs.items()}
    for ref, (key,) in sorted(source_of.items()):
        assert file_hashes(platform.registry.pull(ref, tmp_path / "pull" / ref.replace(":", "-"))) == hashes[key], ref

    # Versions: numbered 1..n per model without gaps or duplicates, and each one was reported by an importer.
    names = {ref.split(":")[0] for ref in source_of} | {"base"}
    assert sorted(m.name for m in platform.registry.list_models()) == sorted(names)
    all_refs = set()
    for name in names:
        numbers = sorted(v.version for v in platform.registry.list_versions(name))
        assert numbers == list(range(1, len(numbers) + 1)), (name, numbers)
        all_refs |= {f"{name}:{n}" for n in numbers}
    assert all_refs == set(source_of) | {"base:1"}

    # Tensors: each distinct content stored once, and exactly the contents the versions need.
    needed = {t.digest for ref in all_refs for f in platform.registry.manifest(ref).files for t in f.tensors}
    with platform.db.read() as session:
        digest, blob = TensorObject.digest, TensorObject.blob_digest
        rows, digests, blobs = session.execute(
            select(func.count(), func.count(distinct(digest)), func.count(distinct(blob)))
        ).one()
        objects = set(session.scalars(select(TensorObject.digest)))
        used = set(session.scalars(select(VersionTensor.tensor_digest).distinct()))
        tensor_refs = session.execute(
            select(BlobRef.owner_id, BlobRef.digest).where(BlobRef.owner_kind == "tensor")
        ).all()
        blob_of = dict(session.execute(select(TensorObject.digest, TensorObject.blob_digest)).all())
    assert rows == digests == blobs == len(needed)
    assert objects == used == needed
    assert sorted(tensor_refs) == sorted(blob_of.items())

    # The store agrees with the metadata; the audit chain survived the concurrent appends.
    assert platform.store.fsck().clean
    assert platform.store.stats().missing == 0
    assert platform.audit.verify().ok


# --- a flipped byte in a stored tensor ---------------------------------------------------------------------
@pytest.mark.parametrize("case", ["raw", "delta", "zstd-header"])
def test_corrupted_tensor_fails_the_pull_closed(
    case: str,
    platform: Platform,
    admin: Actor,
    llama_dir: Path,
    llama_partial_dir: Path,
    zstd_dir: Path,
    tmp_path: Path,
) -> None:
    platform.registry.import_model(admin, llama_dir, name="base")
    if case == "raw":
        ref, encoding, offset = "base:1", "raw", None
    elif case == "delta":
        platform.registry.import_model(admin, llama_partial_dir, name="tuned", base="base:1")
        ref, encoding, offset = "tuned:1", "xor-zstd", None
    else:
        platform.registry.import_model(admin, zstd_dir, name="packed")
        ref, encoding, offset = "packed:1", "zstd", 4  # inside the zstd frame header
    file, tensor, blob = tensor_blob(platform, ref, encoding)
    size = platform.blobs.stat(blob)
    assert size is not None
    if case == "zstd-header":
        assert size.size > 8 * MIB, "the blob must be larger than one read for this case to mean anything"
    flip_byte(platform, blob, size.size // 2 if offset is None else offset)

    dest = tmp_path / "out" / "model"
    with pytest.raises(DataCorrupted) as info:
        platform.registry.pull(ref, dest)
    assert file in info.value.message and tensor in info.value.message, info.value.message
    assert not dest.exists() and not list((tmp_path / "out").iterdir())  # no partial model, no staging leftovers

    cache = platform.model_cache
    with pytest.raises(DataCorrupted):
        cache.materialize(ref)
    assert cache.entries() == [] and not list(cache.root.iterdir())

    report = platform.store.fsck()
    assert report.corrupted == [blob] and not report.missing
    if case == "delta":  # the base version does not contain the corrupted delta and still pulls
        assert file_hashes(platform.registry.pull("base:1", tmp_path / "base")) == file_hashes(llama_dir)


# --- pickles -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["raw", "torch"])
def test_malicious_pickle_is_refused_and_never_runs(
    fmt: str, embedded_platform: Platform, admin: Actor, tmp_path: Path
) -> None:
    from tests.registry import factory

    platform = embedded_platform
    model = tmp_path / "model"
    marker = tmp_path / "payload-ran"
    factory.make_malicious_pickle(model / "pytorch_model.bin", marker, fmt=fmt)  # type: ignore[arg-type]
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    before = stored(platform)

    with pytest.raises(InvalidModel, match="--convert-pickle") as info:
        platform.registry.import_model(admin, model, name="evil")
    assert info.value.details["rule"] == "pickle" and "pytorch_model.bin" in info.value.message
    assert not marker.exists()

    with pytest.raises(InvalidModel, match="weights_only=True") as info:
        platform.registry.import_model(admin, model, name="evil", convert_pickle=True)
    assert info.value.details == {"file": "pytorch_model.bin", "rule": "pickle_conversion_failed"}
    assert not marker.exists()
    assert stored(platform) == before
    assert platform.registry.list_models() == []


def test_legit_pickle_converts_to_the_same_tensors(
    embedded_platform: Platform, admin: Actor, pickle_dir: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    platform = embedded_platform
    version = platform.registry.import_model(admin, pickle_dir, name="legacy", convert_pickle=True).version
    assert version.conversion is not None
    assert version.conversion["files"] == [{"from": "pytorch_model.bin", "to": "model.safetensors"}]
    assert "weights_only=True" in version.conversion["method"]
    assert platform.registry.get_version("legacy:1").conversion == version.conversion

    out = platform.registry.pull("legacy:1", tmp_path / "pulled")
    original = torch.load(pickle_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    converted = load_file(str(out / "model.safetensors"))
    assert sorted(converted) == sorted(original)
    for name, tensor in original.items():
        assert converted[name].dtype == tensor.dtype and torch.equal(converted[name], tensor), name
    source = file_hashes(pickle_dir)
    del source["pytorch_model.bin"]
    pulled = file_hashes(out)
    del pulled["model.safetensors"]
    assert pulled == source  # every other file byte for byte, and no pickle


# --- broken inputs -----------------------------------------------------------------------------------------
BROKEN_DIRS: dict[str, tuple[str | None, str]] = {  # directory -> (the file the error names, the rule)
    "invalid_config_json": ("config.json", "not_json"),
    "missing_shard": ("model.safetensors.index.json", "missing_shard"),
    "index_parent_traversal": ("model.safetensors.index.json", "unsafe_path"),
    "index_absolute_path": ("model.safetensors.index.json", "unsafe_path"),
    "symlink_outside": ("model.safetensors", "symlink_outside"),
    "truncated_safetensors": ("model.safetensors", "truncated"),
    "header_overflow": ("model.safetensors", "header_past_end"),
    "empty": (None, "empty"),
    "readme_only": (None, "no_weights"),
}
BROKEN_SHARD = "model-00002-of-00002.safetensors"


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per corpus case: a sharded model whose first shard is valid and whose second is the broken file."""
    root = tmp_path_factory.mktemp("broken-files")
    rng = np.random.default_rng(5)
    out = {}
    for case, (_, data) in BROKEN.items():
        d = write_model(root / case, {"model-00001-of-00002.safetensors": {"w": rng.standard_normal(64, np.float32)}})
        (d / BROKEN_SHARD).write_bytes(data)
        weight_map = {"w": "model-00001-of-00002.safetensors", "a": BROKEN_SHARD}
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        (d / "README.md").write_text(f"# {case}\n")
        out[case] = d
    return out


def test_broken_inputs_are_refused_before_anything_is_stored(
    platform: Platform, admin: Actor, broken_dirs: dict[str, Path], broken_files: dict[str, Path]
) -> None:
    assert set(broken_dirs) == set(BROKEN_DIRS)
    cases = [(f"dir {label}", path, *BROKEN_DIRS[label]) for label, path in broken_dirs.items()]
    cases += [(f"file {case}", broken_files[case], BROKEN_SHARD, rule) for case, (rule, _) in BROKEN.items()]
    blobs = stored(platform)
    problems = []
    for label, path, file, rule in cases:
        try:
            platform.registry.import_model(admin, path, name="broken")
        except InvalidModel as exc:
            details = exc.details or {}
            named = file in exc.message if file else str(path) in exc.message
            if details.get("rule") != rule or details.get("file") != file or not named:
                problems.append(f"{label}: {exc.message!r} {details}")
        else:
            problems.append(f"{label}: imported")
        if stored(platform) != blobs:
            problems.append(f"{label}: stored blobs")
            blobs = stored(platform)
    assert not problems, "\n".join(problems)
    assert platform.registry.list_models() == []


if __name__ == "__main__":
    worker_main(sys.argv[1:])
