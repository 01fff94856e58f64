"""Registry contract tests, on the embedded stack (SQLite + local) and the scale-out stack (PostgreSQL + S3)."""

from __future__ import annotations

import hashlib
import io
import math
import os
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors import safe_open

from llmops.api.app import create_app
from llmops.blobs.digest import digest_bytes
from llmops.errors import Conflict, InvalidInput, InvalidModel, NotFound, PermissionDenied
from llmops.platform import Platform
from llmops.registry.promotion import MetricRequirement, PromotionPolicy
from llmops.registry.signing import generate_keypair
from llmops.security.actor import Actor
from llmops.security.roles import Role


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def blob_count(platform: Platform) -> int:
    return sum(1 for _ in platform.blobs.iter_blobs())


def parameters_of(model_dir: Path) -> int:
    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), "np") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                total += math.prod(f.get_slice(key).get_shape())
    return total


def test_import_and_pull_is_byte_identical(platform: Platform, admin: Actor, llama_dir: Path, tmp_path: Path) -> None:
    report = platform.registry.import_model(admin, llama_dir, name="llama", description="tiny", tags={"team": "nlp"})
    v = report.version
    assert (v.ref, v.format, v.architecture, v.derivation) == (
        "llama:1",
        "hf-transformers",
        "LlamaForCausalLM",
        "import",
    )
    assert v.parameters == parameters_of(llama_dir) > 0
    assert v.context_length and v.dtype == "F32" and v.tags == {"team": "nlp"}
    assert report.new_tensors + report.deduplicated_tensors == report.tensors > 0
    out = platform.registry.pull("llama:1", tmp_path / "out")
    assert file_hashes(out) == file_hashes(llama_dir)
    assert {f.path for f in platform.registry.get_version("llama").files} == set(file_hashes(llama_dir))
    assert platform.store.fsck().clean


def test_reimport_of_identical_content_stores_nothing(platform: Platform, admin: Actor, llama_dir: Path) -> None:
    platform.registry.import_model(admin, llama_dir, name="llama")
    before = blob_count(platform)
    again = platform.registry.import_model(admin, llama_dir, name="llama")
    assert again.reused_existing_version and again.version.ref == "llama:1"
    other = platform.registry.import_model(admin, llama_dir, name="llama-copy")
    assert other.new_tensors == 0 and other.version.physical_bytes == 0
    assert blob_count(platform) == before  # same tensors, files and manifest: all already stored
    assert len(platform.registry.list_versions("llama")) == 1


def test_sharded_model_round_trips(platform: Platform, admin: Actor, llama_sharded_dir: Path, tmp_path: Path) -> None:
    shards = list(llama_sharded_dir.glob("*.safetensors"))
    assert len(shards) >= 2
    platform.registry.import_model(admin, llama_sharded_dir, name="sharded")
    assert file_hashes(platform.registry.pull("sharded", tmp_path / "o")) == file_hashes(llama_sharded_dir)


def test_model_family_is_stored_compactly(
    platform: Platform,
    admin: Actor,
    llama_dir: Path,
    llama_continued_dir: Path,
    llama_partial_dir: Path,
    lora_merged_dir: Path,
    tmp_path: Path,
) -> None:
    base = platform.registry.import_model(admin, llama_dir, name="fam")
    ft = platform.registry.import_model(admin, llama_continued_dir, name="fam-ft", base="fam:1")
    partial = platform.registry.import_model(admin, llama_partial_dir, name="fam-partial", base="fam:1")
    merged = platform.registry.import_model(admin, lora_merged_dir, name="fam-merged", base="fam:1", derivation="merge")
    # Every tensor of the continued-training copy changed a little: stored as XOR deltas, smaller than raw.
    assert ft.delta_tensors > 0 and ft.version.physical_bytes < ft.logical_bytes
    # Unchanged tensors are stored once across the registry.
    assert partial.deduplicated_tensors > partial.new_tensors
    assert merged.deduplicated_tensors > 0 and merged.version.derivation == "merge"
    whole_files = sum(r.logical_bytes for r in (base, ft, partial, merged))
    stored = sum(r.version.physical_bytes for r in (base, ft, partial, merged))
    assert stored < 0.8 * whole_files
    for ref, src in (
        ("fam-ft:1", llama_continued_dir),
        ("fam-partial:1", llama_partial_dir),
        ("fam-merged:1", lora_merged_dir),
    ):
        assert file_hashes(platform.registry.pull(ref, tmp_path / ref.replace(":", "-"))) == file_hashes(src)


def test_formats_are_detected(
    platform: Platform,
    admin: Actor,
    lora_adapter_dir: Path,
    int8_dir: Path,
    minilm_dir: Path,
    gpt2_dir: Path,
    qwen2_dir: Path,
    bert_dir: Path,
    tmp_path: Path,
) -> None:
    cases = {
        "adapter": (lora_adapter_dir, "peft-lora"),
        "int8": (int8_dir, "compressed-tensors"),
        "minilm": (minilm_dir, "sentence-transformers"),
        "gpt2": (gpt2_dir, "hf-transformers"),
        "qwen2": (qwen2_dir, "hf-transformers"),
        "bert": (bert_dir, "hf-transformers"),
    }
    for name, (src, fmt) in cases.items():
        version = platform.registry.import_model(admin, src, name=name).version
        assert version.format == fmt, name
        assert file_hashes(platform.registry.pull(name, tmp_path / name)) == file_hashes(src), name
    assert platform.registry.get_version("minilm").architecture == "BertModel"
    assert platform.registry.get_version("gpt2").architecture == "GPT2LMHeadModel"


def test_pickles_are_refused_unless_converted(
    platform: Platform, admin: Actor, pickle_dir: Path, tmp_path: Path
) -> None:
    before = blob_count(platform)
    with pytest.raises(InvalidModel, match="--convert-pickle"):
        platform.registry.import_model(admin, pickle_dir, name="pickled")
    assert blob_count(platform) == before
    version = platform.registry.import_model(admin, pickle_dir, name="pickled", convert_pickle=True).version
    assert version.conversion is not None and version.conversion["files"][0]["from"].endswith(".bin")
    out = platform.registry.pull("pickled", tmp_path / "p")
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))


def test_broken_directories_are_refused(platform: Platform, admin: Actor, broken_dirs: dict[str, Path]) -> None:
    before = blob_count(platform)
    for label, path in broken_dirs.items():
        with pytest.raises(InvalidModel) as info:
            platform.registry.import_model(admin, path, name=f"broken-{label}".replace("_", "-")[:100])
        assert info.value.details and "rule" in info.value.details, label
    assert blob_count(platform) == before
    assert platform.registry.list_models() == []


def test_references(platform: Platform, admin: Actor, llama_dir: Path, llama_partial_dir: Path) -> None:
    platform.registry.import_model(admin, llama_dir, name="m")
    platform.registry.import_model(admin, llama_partial_dir, name="m")
    assert platform.registry.get_version("m").version == 2
    assert platform.registry.get_version("m:1").version == 1
    platform.registry.set_alias(admin, "m:1", "staging")
    assert platform.registry.get_version("m@staging").version == 1
    for bad in ("m:x", "m:0", "../m", "m@Bad Alias"):
        with pytest.raises(InvalidInput):
            platform.registry.get_version(bad)
    for missing in ("m:9", "nope", "m@prod"):
        with pytest.raises(NotFound):
            platform.registry.get_version(missing)


def test_aliases_history_rollback_and_protection(
    platform: Platform, admin: Actor, llama_dir: Path, llama_partial_dir: Path
) -> None:
    platform.registry.import_model(admin, llama_dir, name="m")
    platform.registry.import_model(admin, llama_partial_dir, name="m")
    platform.registry.set_alias(admin, "m:1", "production", reason="first")
    platform.registry.set_alias(admin, "m:2", "production", reason="better")
    history = platform.registry.alias_history("m", "production")
    assert [(e.from_version, e.to_version) for e in history] == [(1, 2), (None, 1)]
    assert platform.registry.rollback_alias(admin, "m", "production").version == 1
    developer = Actor(name="dev", role=Role.developer, principal_id=None)
    with pytest.raises(PermissionDenied, match="maintainer"):
        platform.registry.set_alias(developer, "m:2", "production")
    platform.registry.set_alias(developer, "m:2", "canary")  # not protected
    events = [e.action for e in platform.audit.list(action="model_alias")]
    assert events.count("model_alias.set") == 4
    assert platform.audit.verify().ok


def test_promotion_needs_evidence(platform: Platform, admin: Actor, llama_dir: Path, tmp_path: Path) -> None:
    platform.registry.import_model(admin, llama_dir, name="m")
    policy = PromotionPolicy(evaluations=[MetricRequirement(metric="eval/accuracy", op=">=", value=0.8)])
    platform.registry.set_policy(admin, "m", policy)
    with pytest.raises(Conflict, match="no finished eval run"):
        platform.registry.set_alias(admin, "m:1", "production")
    with platform.start_run(kind="eval", name="eval-low", actor=admin) as run:
        run.add_input("model_version", "m:1")
        run.log_metrics({"eval/accuracy": 0.5})
    with pytest.raises(Conflict, match=r"eval/accuracy >= 0.8 not met \(best evidence 0.5\)"):
        platform.registry.set_alias(admin, "m:1", "production")
    with platform.start_run(kind="eval", name="eval-high", actor=admin) as run:
        run.add_input("model_version", "m:1")
        run.log_metrics({"eval/accuracy": 0.9})
    assert platform.registry.set_alias(admin, "m:1", "production").version == 1
    # A signature requirement: unsigned fails, signed by an untrusted key fails, trusted key passes.
    key = tmp_path / "signing.pem"
    public = generate_keypair(key)
    platform.registry.set_policy(admin, "m", PromotionPolicy(require_signature=True, trusted_keys=["00" * 32]))
    assert any("not signed" in f for f in platform.registry.promotion_check("m:1"))
    platform.registry.sign(admin, "m:1", key)
    assert platform.registry.verify_signature("m:1") and platform.registry.verify_signature(
        "m:1", trusted_keys=[public]
    )
    assert not platform.registry.verify_signature("m:1", trusted_keys=["00" * 32])
    assert any("not in the policy's trusted_keys" in f for f in platform.registry.promotion_check("m:1"))
    platform.registry.set_policy(admin, "m", PromotionPolicy(require_signature=True, trusted_keys=[public]))
    assert platform.registry.promotion_check("m:1") == []


def test_lineage_and_diff(
    platform: Platform, admin: Actor, llama_dir: Path, llama_partial_dir: Path, lora_merged_dir: Path
) -> None:
    with platform.start_run(kind="finetune", name="ft", actor=admin) as run:
        run.add_input("dataset_version", "corpus:1")
    platform.registry.import_model(admin, llama_dir, name="base")
    platform.registry.import_model(admin, llama_partial_dir, name="child", base="base:1", run_id=run.id)
    platform.registry.import_model(admin, lora_merged_dir, name="merged", base="base:1", derivation="merge")
    node = platform.registry.lineage("child:1")
    assert node.derivation == "finetune" and node.run_id == run.id and node.datasets == ["corpus:1"]
    assert node.base is not None and node.base.ref == "base:1" and node.base.derived == ["child:1", "merged:1"]
    assert "output" in {d for _, d in platform.tracking.runs_touching("model_version", "child:1")}
    diff = platform.registry.diff("base:1", "merged:1")
    changed = {t.name for t in diff.tensors if t.status == "changed"}
    assert changed and all("q_proj" in n or "v_proj" in n for n in changed)
    assert all(t.relative_l2 is not None and 0 < t.relative_l2 < 1 for t in diff.tensors if t.status == "changed")
    assert diff.unchanged > 0 and diff.added == diff.removed == 0


def test_delete_respects_dependents(
    platform: Platform, admin: Actor, llama_dir: Path, llama_continued_dir: Path, tmp_path: Path
) -> None:
    platform.registry.import_model(admin, llama_dir, name="base")
    ft = platform.registry.import_model(admin, llama_continued_dir, name="ft", base="base:1")
    assert ft.delta_tensors > 0
    with pytest.raises(Conflict, match="ft:1"):
        platform.registry.delete_version(admin, "base:1")
    platform.registry.delete_version(admin, "ft:1")
    assert platform.registry.list_versions("ft") == []
    platform.registry.delete_version(admin, "base:1")
    report = platform.store.gc(grace_seconds=0)
    assert report.removed
    assert platform.store.fsck().clean
    assert platform.store.stats().referenced_blobs == 0


def test_delete_keeps_shared_tensors(
    platform: Platform, admin: Actor, llama_dir: Path, llama_partial_dir: Path, tmp_path: Path
) -> None:
    platform.registry.import_model(admin, llama_dir, name="a")
    platform.registry.import_model(admin, llama_partial_dir, name="b")  # no base: shares unchanged tensors
    platform.registry.delete_version(admin, "a:1")
    platform.store.gc(grace_seconds=0)
    assert file_hashes(platform.registry.pull("b:1", tmp_path / "b")) == file_hashes(llama_partial_dir)


def test_model_cache(platform: Platform, admin: Actor, llama_dir: Path, llama_partial_dir: Path) -> None:
    platform.registry.import_model(admin, llama_dir, name="c1")
    platform.registry.import_model(admin, llama_partial_dir, name="c2")
    first = platform.model_cache.materialize("c1")
    assert file_hashes(first).keys() >= file_hashes(llama_dir).keys()
    assert platform.model_cache.materialize("c1:1") == first
    assert platform.model_cache.verify_entry("c1")
    config = (first / "config.json").read_bytes()
    (first / "config.json").write_bytes(config.replace(b"{", b"[", 1))  # same size, one byte changed
    assert not platform.model_cache.verify_entry("c1")  # the whole-file BLAKE3 catches it
    (first / "config.json").write_bytes(config)
    platform.model_cache.flush()  # the entry becomes durable and marked in the background
    assert [e.ref for e in platform.model_cache.entries()] == ["c1"]
    platform.model_cache.cap_bytes = 1  # room for only the newest entry
    platform.model_cache.materialize("c2")
    platform.model_cache.flush()
    assert [e.ref for e in platform.model_cache.entries()] == ["c2"]
    assert not first.exists()


def _tar(directory: Path, *, top: str | None = None, mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        archive.add(directory, arcname=top or ".")
    return buffer.getvalue()


def test_upload_of_a_tar_archive(platform: Platform, admin: Actor, llama_dir: Path, tmp_path: Path) -> None:
    """A model sent over HTTP as a tar stream (plain or gzip, flat or in one top directory) imports like a
    local directory; broken and escaping archives are refused and leave no version and no spool behind."""
    platform.security.create_principal(admin, "up", role="developer")
    headers = {"Authorization": f"Bearer {platform.security.create_key(admin, principal='up').key}"}
    client = TestClient(create_app(platform=platform))
    url = "/api/v1/models/uploaded/upload"
    created = client.post(url, content=_tar(llama_dir), headers=headers, params={"tag": ["team=nlp"]})
    assert created.status_code == 201, created.text
    assert created.json()["version"]["ref"] == "uploaded:1" and created.json()["version"]["tags"] == {"team": "nlp"}
    again = client.post(url, content=_tar(llama_dir, top="m", mode="w:gz"), headers=headers)
    assert again.status_code == 201 and again.json()["reused_existing_version"]
    pulled = tmp_path / "pulled"
    platform.registry.pull("uploaded:1", pulled)
    assert file_hashes(pulled) == file_hashes(llama_dir)

    not_tar = client.post("/api/v1/models/bad/upload", content=b"not a tar at all" * 100, headers=headers)
    assert not_tar.status_code == 422 and "not a tar archive" in not_tar.json()["error"]["message"]
    escaping = io.BytesIO()
    with tarfile.open(fileobj=escaping, mode="w") as archive:
        payload = b"{}"
        info = tarfile.TarInfo("../outside.json")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    refused = client.post("/api/v1/models/bad/upload", content=escaping.getvalue(), headers=headers)
    assert refused.status_code == 422 and "refusing the archive" in refused.json()["error"]["message"]
    assert not (platform.settings.home / "tmp" / "outside.json").exists()
    truncated = client.post("/api/v1/models/bad/upload", content=_tar(llama_dir)[:5000], headers=headers)
    assert truncated.status_code == 422
    assert [m.name for m in platform.registry.list_models()] == ["uploaded"]
    assert list((platform.settings.home / "tmp").iterdir()) == []  # spools and unpacked files are gone
    viewer = platform.security.create_principal(admin, "v", role="viewer")
    assert viewer
    view_headers = {"Authorization": f"Bearer {platform.security.create_key(admin, principal='v').key}"}
    assert client.post(url, content=_tar(llama_dir), headers=view_headers).status_code == 403


def test_model_cache_can_require_a_trusted_signature(
    platform: Platform, admin: Actor, llama_dir: Path, llama_partial_dir: Path, tmp_path: Path
) -> None:
    """What a deployment that requires signatures loads through: unsigned, untrusted and moved-alias
    versions are refused with the reason, and nothing is materialized for them."""
    trusted, other = tmp_path / "trusted.pem", tmp_path / "other.pem"
    trusted_key, other_key = generate_keypair(trusted), generate_keypair(other)
    platform.registry.import_model(admin, llama_dir, name="s")
    platform.registry.import_model(admin, llama_partial_dir, name="s")
    cache = platform.model_cache
    with pytest.raises(PermissionDenied, match="it is not signed"):
        cache.materialize("s:1", trusted_keys=[trusted_key])
    platform.registry.sign(admin, "s:1", other)
    with pytest.raises(PermissionDenied, match="not among the trusted keys"):
        cache.materialize("s:1", trusted_keys=[trusted_key])
    assert cache.entries() == []
    platform.registry.sign(admin, "s:1", trusted)
    assert cache.materialize("s:1", trusted_keys=[trusted_key, other_key]).is_dir()
    with pytest.raises(PermissionDenied, match="moved to another version"):
        platform.registry.require_signature(
            "s:2", [trusted_key], manifest_digest=platform.registry.manifest("s:1").digest
        )
    cache.flush()


def test_model_cache_rebuilds_entries_a_crash_left_unmarked(
    embedded_platform: Platform, admin: Actor, llama_dir: Path
) -> None:
    """A directory without its completion marker (the process died before its files were durable) is not
    trusted: it is rebuilt, and a bogus file in it disappears."""
    cache = embedded_platform.model_cache
    embedded_platform.registry.import_model(admin, llama_dir, name="c")
    path = cache.materialize("c")
    cache.flush()
    (path / ".llmops-entry.json").unlink()
    os.chmod(path, 0o755)
    (path / "stray.bin").write_bytes(b"left over")
    note = path / ".syncing"
    note.write_text('{"boot_id": "another-boot", "pid": 1}')  # a sync from before a reboot: not trusted
    again = cache.materialize("c")
    cache.flush()
    assert again == path and not (path / "stray.bin").exists() and not note.exists()
    assert file_hashes(path).items() >= {k: v for k, v in file_hashes(llama_dir).items()}.items()
    assert [e.ref for e in cache.entries()] == ["c"]


def test_rest_api(platform: Platform, admin: Actor, llama_dir: Path, tmp_path: Path) -> None:
    platform.security.create_principal(admin, "ml", role="developer")
    key = platform.security.create_key(admin, principal="ml").key
    client = TestClient(create_app(platform=platform))
    headers = {"Authorization": f"Bearer {key}"}
    denied = client.post("/api/v1/models/import", json={"path": str(llama_dir), "name": "r"}, headers=headers)
    assert denied.status_code == 403 and "LLMOPS_IMPORT_ROOTS" in denied.json()["error"]["message"]
    platform.settings.import_roots = [llama_dir.parent]
    created = client.post("/api/v1/models/import", json={"path": str(llama_dir), "name": "r"}, headers=headers)
    assert created.status_code == 201, created.text
    assert client.get("/api/v1/models", headers=headers).json()[0]["name"] == "r"
    detail = client.get("/api/v1/models/r/versions/1", headers=headers).json()
    for entry in detail["files"]:
        response = client.get(f"/api/v1/models/r/versions/1/files/{entry['path']}", headers=headers)
        assert response.status_code == 200
        expected = digest_bytes((llama_dir / entry["path"]).read_bytes())
        assert response.content == (llama_dir / entry["path"]).read_bytes()
        assert entry["digest"] == f"blake3:{expected}" and response.headers["x-content-blake3"] == expected
    assert client.put("/api/v1/models/r/aliases/staging", json={"version": 1}, headers=headers).status_code == 200
    assert client.get("/api/v1/models/r/resolve/staging", headers=headers).json()["version"] == 1
    assert client.put("/api/v1/models/r/aliases/production", json={"version": 1}, headers=headers).status_code == 403
    assert client.delete("/api/v1/models/r/versions/1", headers=headers).status_code == 403
    assert client.get("/api/v1/models/r/versions/7", headers=headers).status_code == 404


def test_versions_with_a_schema_1_manifest_stay_readable(
    platform: Platform, admin: Actor, llama_dir: Path, tmp_path: Path
) -> None:
    """Manifests stored before schema 2 recorded each file's SHA-256 instead of its BLAKE3: they keep their
    digest (signatures, cache keys), pull byte for byte, verify in the model cache and download with the
    SHA-256 header."""
    import json

    import sqlalchemy as sa

    from llmops.blobs.io import put_bytes
    from llmops.registry.manifest import Manifest
    from llmops.registry.tables import ModelVersion

    platform.registry.import_model(admin, llama_dir, name="old")
    current = platform.registry.manifest("old:1")
    assert current.schema_version == 2 and all(f.blake3 and f.sha256 is None for f in current.files)
    # the manifest as schema 1 wrote it: "sha256" per file, no "blake3" key at all
    data = json.loads(current.canonical())
    data["schema_version"] = 1
    for entry in data["files"]:
        del entry["blake3"]
        entry["sha256"] = hashlib.sha256((llama_dir / entry["path"]).read_bytes()).hexdigest()
    stored = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    legacy = Manifest.model_validate_json(stored)
    assert legacy.canonical() == stored and legacy.digest == digest_bytes(stored)
    put_bytes(platform.blobs, stored)
    with platform.db.write() as session:
        session.execute(sa.update(ModelVersion).values(manifest_digest=legacy.digest))
    assert platform.registry.manifest("old:1").files[0].checksum[0] == "sha256"
    out = platform.registry.pull("old:1", tmp_path / "out")
    assert file_hashes(out) == file_hashes(llama_dir)
    cached = platform.model_cache.materialize("old:1")
    assert cached.name == legacy.digest and platform.model_cache.verify_entry("old:1")
    (cached / "config.json").write_text("{}")  # a changed byte must fail the SHA-256 re-check
    assert not platform.model_cache.verify_entry("old:1")
    client = TestClient(create_app(platform=platform))
    platform.security.create_principal(admin, "old-reader", role="viewer")
    key = platform.security.create_key(admin, principal="old-reader").key
    response = client.get("/api/v1/models/old/versions/1/files/config.json", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.headers["x-content-sha256"] == hashlib.sha256(response.content).hexdigest()


def test_a_manifest_file_needs_a_digest() -> None:
    from pydantic import ValidationError

    from llmops.registry.manifest import FileEntry

    with pytest.raises(ValidationError, match="has no digest"):
        FileEntry(path="config.json", size=2, kind="blob", blob="0" * 64)
