"""The model registry: import, versions, pull, aliases, lineage, diff and deletion.

Imports follow the platform's write order: every blob (tensors, headers, small files, the manifest) is
stored first by ``importer.prepare``; then one transaction, under the registry lock, numbers the version,
records new tensor objects and blob references, and appends the audit event. A crash before that
transaction leaves only unreferenced blobs (``store gc`` removes them); a reader never sees a partial
version.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from llmops.blobs.base import BlobInfo, BlobStore
from llmops.blobs.io import put_bytes, read_bytes
from llmops.blobs.refs import add_refs, drop_refs
from llmops.db.base import utcnow
from llmops.db.database import Database
from llmops.errors import Conflict, InvalidInput, InvalidModel, NotFound, PermissionDenied
from llmops.naming import check_name
from llmops.registry import archive, exporter, importer, planner, promotion, signing
from llmops.registry.formats import scan
from llmops.registry.manifest import FileEntry, Manifest, TensorEntry
from llmops.registry.promotion import DEFAULT_POLICY, PromotionPolicy
from llmops.registry.refs import ModelRef, check_alias, parse_ref
from llmops.registry.schemas import (
    AliasEventOut,
    AliasOut,
    FileOut,
    ImportReport,
    LineageNode,
    ModelOut,
    TensorChange,
    TensorOut,
    VersionDetail,
    VersionDiff,
    VersionOut,
)
from llmops.registry.tables import AliasEvent, ModelAlias, ModelVersion, RegisteredModel, TensorObject, VersionTensor
from llmops.registry.tensorstore import TensorRecord, decode
from llmops.security.actor import Actor
from llmops.security.audit import AuditLog
from llmops.security.roles import Role
from llmops.tracking.service import TrackingService

DERIVATIONS = ("import", "finetune", "quantize", "prune", "distill", "merge")
Progress = Callable[[str, int, int], None]


def _record(row: TensorObject) -> TensorRecord:
    return TensorRecord(row.digest, row.size, row.encoding, row.blob_digest, row.base_digest)


class RegistryService:
    def __init__(self, db: Database, blobs: BlobStore, audit: AuditLog, tracking: TrackingService) -> None:
        self.db = db
        self.blobs = blobs
        self.audit = audit
        self.tracking = tracking

    # import ---------------------------------------------------------------------------------------
    def import_model(
        self,
        actor: Actor,
        path: Path,
        *,
        name: str,
        base: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        derivation: str | None = None,
        run_id: str | None = None,
        convert_pickle: bool = False,
        progress: Progress | None = None,
    ) -> ImportReport:
        check_name(name)
        derivation = derivation or ("finetune" if base else "import")
        if derivation not in DERIVATIONS:
            raise InvalidInput(f"derivation: {derivation!r} is not one of {', '.join(DERIVATIONS)}")
        base_ref = parse_ref(base) if base else None
        with tempfile.TemporaryDirectory(prefix="llmops-convert-") as scratch:
            directory = scan(Path(path))
            conversion: dict[str, Any] | None = None
            if directory.pickles and convert_pickle:
                converted_root, conversion = _convert_pickles(directory.root, directory.pickles, Path(scratch))
                directory = scan(converted_root)
            layouts = importer.validate(directory)
            base_tensors: dict[str, importer.BaseTensor] = {}
            base_version_id: int | None = None
            if base_ref is not None:
                base_version_id, base_tensors = self._base_tensors(base_ref)
            prepared = importer.prepare(
                self.blobs,
                directory,
                layouts,
                known_tensors=self._tensors_known,
                base_tensors=base_tensors,
                progress=progress,
            )
        manifest_blob = put_bytes(self.blobs, prepared.manifest.canonical())
        manifest_digest = prepared.manifest.digest
        assert manifest_blob.digest == manifest_digest
        new = prepared.new_tensors
        with self.db.write() as session:
            self.db.lock(session, "registry")
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
            if model is None:
                model = RegisteredModel(name=name, description=None, created_by=actor.label)
                session.add(model)
                session.flush()
                self.audit.append(session, actor, "model.create", f"model/{name}")
            latest = session.scalar(
                select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version.desc())
            )
            if (
                latest is not None
                and latest.manifest_digest == manifest_digest
                and base_version_id
                in (
                    None,
                    latest.base_version_id,
                )
            ):
                return self._report(session, latest, prepared, reused=True)
            present = _tensors_in(session, new.keys())  # stored concurrently by another import: the same content
            added = [(digest, stored) for digest, stored in new.items() if digest not in present]
            session.add_all(
                TensorObject(
                    digest=digest,
                    size=stored.size,
                    encoding=stored.encoding,
                    blob_digest=stored.blob.digest,
                    stored_size=stored.blob.size,
                    base_digest=stored.base_digest,
                    depth=stored.depth,
                )
                for digest, stored in added
            )
            add_refs(session, [stored.blob for _, stored in added], "tensor", [digest for digest, _ in added])
            physical = sum(stored.blob.size for _, stored in added)
            session.flush()
            number = (latest.version if latest else 0) + 1
            version = ModelVersion(
                model_id=model.id,
                version=number,
                format=directory.format,
                architecture=directory.architecture,
                manifest_digest=manifest_digest,
                logical_bytes=prepared.manifest.logical_bytes,
                physical_bytes=physical,
                parameters=prepared.parameters,
                dtype=prepared.dtype,
                context_length=directory.context_length,
                base_version_id=base_version_id,
                derivation=derivation,
                run_id=run_id,
                description=description,
                tags=dict(tags or {}),
                conversion=conversion,
                created_by=actor.label,
            )
            session.add(version)
            session.flush()
            owner = f"{name}:{number}"
            version_blobs = [manifest_blob]
            version_blobs += [self.blobs.stat(d) or BlobInfo(d, 0, 0.0) for d in prepared.blob_digests]
            add_refs(session, version_blobs, "model_version", [owner] * len(version_blobs))
            for digest in {t.digest for f in prepared.manifest.files for t in f.tensors}:
                session.add(VersionTensor(version_id=version.id, tensor_digest=digest))
            self.audit.append(
                session,
                actor,
                "model_version.create",
                f"model/{owner}",
                {
                    "manifest": manifest_digest,
                    "format": version.format,
                    "base": str(base_ref) if base_ref else None,
                    "derivation": derivation,
                    "converted": bool(conversion),
                },
            )
            report = self._report(session, version, prepared, reused=False)
        if run_id:
            self.tracking.add_lineage(actor, run_id, "output", "model_version", report.version.ref)
        return report

    def _report(
        self, session: Session, version: ModelVersion, prepared: importer.PreparedImport, *, reused: bool
    ) -> ImportReport:
        new = prepared.new_tensors.values()
        tensors = sum(len(f.tensors) for f in prepared.manifest.files)
        return ImportReport(
            version=self._version_out(session, version),
            reused_existing_version=reused,
            tensors=tensors,
            new_tensors=len(prepared.new_tensors),
            deduplicated_tensors=tensors - len(prepared.new_tensors),
            delta_tensors=sum(1 for t in new if t.encoding == "xor-zstd"),
            compressed_tensors=sum(1 for t in new if t.encoding == "zstd"),
            raw_tensors=sum(1 for t in new if t.encoding == "raw"),
            logical_bytes=prepared.manifest.logical_bytes,
            stored_bytes=version.physical_bytes,
        )

    def _tensors_known(self, digests: Collection[str]) -> set[str]:
        """Those of ``digests`` the registry holds already."""
        with self.db.read() as session:
            return _tensors_in(session, digests)

    def _base_tensors(self, ref: ModelRef) -> tuple[int, dict[str, importer.BaseTensor]]:
        with self.db.read() as session:
            _, version = self._resolve(session, ref)
            version_id = version.id
            manifest = self._manifest(version.manifest_digest)
            digests = {t.digest for f in manifest.files for t in f.tensors}
            rows = {r.digest: r for r in session.scalars(select(TensorObject).where(TensorObject.digest.in_(digests)))}
        out: dict[str, importer.BaseTensor] = {}
        for name, (_, entry) in manifest.tensors().items():
            row = rows.get(entry.digest)
            if row is None:
                continue
            record = _record(row)
            out[name] = importer.BaseTensor(
                digest=row.digest,
                depth=row.depth,
                dtype=entry.dtype,
                shape=tuple(entry.shape),
                source=self._decoder(record, f"base {ref}:{name}"),
            )
        return version_id, out

    def _decoder(self, record: TensorRecord, what: str) -> Callable[[], Iterator[bytes]]:
        return lambda: decode(self.blobs, record, self._lookup, what=what)

    def _lookup(self, digest: str) -> TensorRecord:
        with self.db.read() as session:
            row = session.get(TensorObject, digest)
            if row is None:
                raise NotFound(f"tensor {digest} is not in the registry")
            return _record(row)

    # reading --------------------------------------------------------------------------------------
    def _resolve(self, session: Session, ref: ModelRef) -> tuple[RegisteredModel, ModelVersion]:
        model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == ref.name))
        if model is None:
            raise NotFound(
                f"model {ref.name!r} does not exist; import one with `llmops models import PATH --name {ref.name}`"
            )
        query = select(ModelVersion).where(ModelVersion.model_id == model.id)
        if ref.version is not None:
            version = session.scalar(query.where(ModelVersion.version == ref.version))
            if version is None:
                raise NotFound(f"model {ref.name!r} has no version {ref.version}")
        elif ref.alias is not None:
            alias = session.get(ModelAlias, (model.id, ref.alias))
            if alias is None:
                raise NotFound(f"model {ref.name!r} has no alias {ref.alias!r}")
            version = session.get(ModelVersion, alias.version_id)
            assert version is not None
        else:
            version = session.scalar(query.order_by(ModelVersion.version.desc()))
            if version is None:
                raise NotFound(f"model {ref.name!r} has no versions")
        return model, version

    def _manifest(self, digest: str) -> Manifest:
        return Manifest.model_validate_json(read_bytes(self.blobs, digest))

    def _version_out(self, session: Session, version: ModelVersion) -> VersionOut:
        model = session.get(RegisteredModel, version.model_id)
        assert model is not None
        base = session.get(ModelVersion, version.base_version_id) if version.base_version_id else None
        base_ref = None
        if base is not None:
            base_model = session.get(RegisteredModel, base.model_id)
            base_ref = f"{base_model.name}:{base.version}" if base_model else None
        aliases = sorted(
            session.scalars(
                select(ModelAlias.alias).where(ModelAlias.model_id == model.id, ModelAlias.version_id == version.id)
            )
        )
        return VersionOut(
            model=model.name,
            version=version.version,
            ref=f"{model.name}:{version.version}",
            format=version.format,
            architecture=version.architecture,
            manifest_digest=version.manifest_digest,
            logical_bytes=version.logical_bytes,
            physical_bytes=version.physical_bytes,
            parameters=version.parameters,
            dtype=version.dtype,
            context_length=version.context_length,
            base=base_ref,
            derivation=version.derivation,
            run_id=version.run_id,
            description=version.description,
            tags=dict(version.tags or {}),
            conversion=version.conversion,
            signature=version.signature,
            aliases=aliases,
            created_at=version.created_at,
            created_by=version.created_by,
        )

    def list_models(self) -> list[ModelOut]:
        with self.db.read() as session:
            out = []
            for model in session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)):
                count, latest = session.execute(
                    select(func.count(), func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
                ).one()
                aliases = {
                    a: v
                    for a, v in session.execute(
                        select(ModelAlias.alias, ModelVersion.version)
                        .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
                        .where(ModelAlias.model_id == model.id)
                    )
                }
                out.append(
                    ModelOut(
                        name=model.name,
                        description=model.description,
                        created_at=model.created_at,
                        created_by=model.created_by,
                        versions=count,
                        latest=latest,
                        aliases=aliases,
                        policy=model.policy,
                    )
                )
            return out

    def list_versions(self, name: str) -> list[VersionOut]:
        with self.db.read() as session:
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
            if model is None:
                raise NotFound(f"model {name!r} does not exist")
            rows = session.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version.desc())
            )
            return [self._version_out(session, v) for v in rows]

    def get_version(self, ref: str) -> VersionDetail:
        with self.db.read() as session:
            _, version = self._resolve(session, parse_ref(ref))
            out = self._version_out(session, version)
            manifest = self._manifest(version.manifest_digest)
            digests = {t.digest for f in manifest.files for t in f.tensors}
            rows = {r.digest: r for r in session.scalars(select(TensorObject).where(TensorObject.digest.in_(digests)))}
        files = [
            FileOut(path=f.path, size=f.size, digest=":".join(f.checksum), kind=f.kind, tensors=len(f.tensors))
            for f in manifest.files
        ]
        tensors = [
            TensorOut(
                file=f.path,
                name=t.name,
                dtype=t.dtype,
                shape=t.shape,
                bytes=t.end - t.begin,
                digest=t.digest,
                encoding=rows[t.digest].encoding,
                stored_bytes=rows[t.digest].stored_size,
                base_digest=rows[t.digest].base_digest,
            )
            for f in manifest.files
            for t in f.tensors
        ]
        return VersionDetail(**out.model_dump(), files=files, tensors=tensors)

    def manifest(self, ref: str) -> Manifest:
        with self.db.read() as session:
            _, version = self._resolve(session, parse_ref(ref))
            digest = version.manifest_digest
        return self._manifest(digest)

    def read_tensor(self, entry: TensorEntry, what: str) -> Iterator[bytes]:
        """The verified bytes of one tensor of a manifest."""
        return decode(self.blobs, self._lookup(entry.digest), self._lookup, what=what)

    def config(self, ref: str) -> dict[str, Any]:
        """The version's config.json (for adapters: adapter_config.json), parsed."""
        manifest = self.manifest(ref)
        for name in ("config.json", "adapter_config.json"):
            entry = next((f for f in manifest.files if f.path == name and f.blob), None)
            if entry is not None and entry.blob is not None:
                data = json.loads(read_bytes(self.blobs, entry.blob))
                if isinstance(data, dict):
                    return data
        raise NotFound(f"{ref} has no config.json to describe its architecture")

    def plan(self, ref: str, **options: Any) -> planner.Plan:
        """Memory plan of a version: its config for the shape, its stored tensors for the exact parameter count."""
        shape = planner.ModelShape.from_config(self.config(ref))
        with self.db.read() as session:  # the version row only: not the whole card with its tensor table
            _, version = self._resolve(session, parse_ref(ref))
            parameters = version.parameters or planner.estimate_parameters(shape)
        return planner.plan(shape, parameters=parameters, **options)

    def file_stream(self, ref: str, path: str) -> tuple[FileEntry, Iterator[bytes]]:
        manifest = self.manifest(ref)
        entry = next((f for f in manifest.files if f.path == path), None)
        if entry is None:
            raise NotFound(f"{ref} has no file {path!r}")
        return entry, exporter.file_chunks(self.blobs, entry, self.read_tensor)

    def import_archive(
        self, actor: Actor, fileobj: BinaryIO, *, name: str, workdir: Path, **options: Any
    ) -> ImportReport:
        """Import a model uploaded as a tar stream: unpacked into ``workdir`` (removed afterwards), then
        imported like a local directory (``import_model`` options pass through)."""
        check_name(name)  # before reading a possibly large body
        workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="llmops-upload-", dir=workdir) as scratch:
            root = archive.unpack(fileobj, Path(scratch) / "model")
            return self.import_model(actor, root, name=name, **options)

    @staticmethod
    def check_import_root(path: Path, roots: list[Path]) -> Path:
        """Server-side imports read only below the configured roots (a shared volume), never anywhere."""
        if "\x00" in str(path):
            raise InvalidInput("path: contains a NUL character", details={"field": "path"})
        resolved = Path(path).resolve()
        if not roots:
            raise PermissionDenied(
                "server-side import is disabled: set LLMOPS_IMPORT_ROOTS to the directories it may read, "
                "or import with the CLI where the files are"
            )
        if not any(resolved == r.resolve() or r.resolve() in resolved.parents for r in roots):
            raise PermissionDenied(f"{path} is outside LLMOPS_IMPORT_ROOTS ({', '.join(map(str, roots))})")
        return resolved

    def copy_tensor(self, entry: TensorEntry, fd: int, what: str, *, writeback: bool = True) -> bool:
        """Fast path of a load: a raw tensor in a local store is copied inside the kernel into ``fd`` while
        its digest is checked from memory on another core. False when the generic path must be used.
        ``writeback`` starts the disk write as the copy goes (durable pulls: the final fsync is then short)."""
        record = self._lookup(entry.digest)
        path_of = getattr(self.blobs, "path", None)
        if record.encoding != "raw" or path_of is None:
            return False
        from llmops.blobs.local import copy_verified

        copy_verified(Path(path_of(record.blob_digest)), fd, record.digest, what=what, writeback=writeback)
        return True

    def pull(self, ref: str, dest: Path, *, progress: Progress | None = None, durable: bool = True) -> Path:
        """Rebuild a version's files in ``dest``, every tensor and file verified."""
        manifest = self.manifest(ref)
        return exporter.materialize(
            self.blobs,
            manifest,
            Path(dest),
            self.read_tensor,
            # a non-durable pull (the model cache syncs in the background) leaves write-back to the kernel
            copy_tensor=lambda entry, fd, what: self.copy_tensor(entry, fd, what, writeback=durable),
            progress=progress,
            durable=durable,
        )

    # aliases --------------------------------------------------------------------------------------
    def set_alias(self, actor: Actor, ref: str, alias: str, *, reason: str | None = None) -> AliasOut:
        """Point an alias at a version. Protected aliases need the maintainer role and the model's
        promotion policy satisfied by evidence; a refusal names every unmet requirement."""
        check_alias(alias)
        parsed = parse_ref(ref)
        policy = self.get_policy(parsed.name)
        if alias in policy.protected_aliases:
            if actor.role < Role.maintainer:
                raise PermissionDenied(
                    f"alias {alias!r} of {parsed.name} is protected: moving it needs the maintainer role; "
                    f"{actor.name} has {actor.role.name}",
                    details={"required_role": "maintainer"},
                )
            failures = self.promotion_check(str(parsed), policy)
            if failures:
                raise Conflict(
                    f"promotion of {parsed} to {alias!r} refused: " + "; ".join(failures),
                    details={"unmet": failures},
                )
        with self.db.write() as session:
            model, version = self._resolve(session, parsed)
            current = session.get(ModelAlias, (model.id, alias))
            previous_row = session.get(ModelVersion, current.version_id) if current else None
            previous = previous_row.version if previous_row else None
            if current is None:
                current = ModelAlias(model_id=model.id, alias=alias, version_id=version.id, updated_by=actor.label)
                session.add(current)
            else:
                current.version_id, current.updated_at, current.updated_by = version.id, utcnow(), actor.label
            session.add(
                AliasEvent(
                    model_id=model.id,
                    alias=alias,
                    from_version=previous,
                    to_version=version.version,
                    actor=actor.label,
                    reason=reason,
                )
            )
            self.audit.append(
                session,
                actor,
                "model_alias.set",
                f"model/{model.name}@{alias}",
                {"from": previous, "to": version.version, "reason": reason},
            )
            session.flush()
            return AliasOut(
                alias=alias, version=version.version, updated_at=current.updated_at, updated_by=current.updated_by
            )

    # policies and signatures ----------------------------------------------------------------------
    def get_policy(self, name: str) -> PromotionPolicy:
        with self.db.read() as session:
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
            if model is None:
                raise NotFound(f"model {name!r} does not exist")
            return PromotionPolicy.model_validate(model.policy) if model.policy else DEFAULT_POLICY

    def set_policy(self, actor: Actor, name: str, policy: PromotionPolicy) -> PromotionPolicy:
        for alias in policy.protected_aliases:
            check_alias(alias)
        with self.db.write() as session:
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
            if model is None:
                raise NotFound(f"model {name!r} does not exist")
            model.policy = policy.model_dump(mode="json")
            self.audit.append(session, actor, "model.policy", f"model/{name}", model.policy)
        return policy

    def promotion_check(self, ref: str, policy: PromotionPolicy | None = None) -> list[str]:
        """Unmet requirements of the policy for a version (empty list: it may be promoted)."""
        parsed = parse_ref(ref)
        policy = policy or self.get_policy(parsed.name)
        with self.db.read() as session:
            _, version = self._resolve(session, parsed)
            full_ref = f"{parsed.name}:{version.version}"
            fmt, signature, digest = version.format, version.signature, version.manifest_digest
        runs = [
            self.tracking.get_run(run_id)
            for run_id, direction in self.tracking.runs_touching("model_version", full_ref)
            if direction == "input"
        ]
        valid = bool(signature) and signing.verify(digest, signature["signature"], signature["public_key"])  # type: ignore[index]
        return promotion.check(policy, format=fmt, signature=signature, signature_valid=valid, eval_runs=runs)

    def sign(self, actor: Actor, ref: str, key_path: Path) -> dict[str, Any]:
        key = signing.load_private_key(key_path)
        with self.db.write() as session:
            model, version = self._resolve(session, parse_ref(ref))
            signature, public = signing.sign(version.manifest_digest, key)
            version.signature = {
                "signature": signature,
                "public_key": public,
                "by": actor.label,
                "at": utcnow().isoformat(),
            }
            self.audit.append(
                session, actor, "model_version.sign", f"model/{model.name}:{version.version}", {"public_key": public}
            )
            return dict(version.signature)

    def verify_signature(self, ref: str, *, trusted_keys: Sequence[str] | None = None) -> bool:
        """True when the version is signed, the signature verifies, and (if given) the key is trusted."""
        return self._signature_problem(ref, trusted_keys) is None

    def require_signature(self, ref: str, trusted_keys: Sequence[str], *, manifest_digest: str | None = None) -> None:
        """Refuse (``PermissionDenied``, saying why) unless a trusted key validly signed this version.

        ``manifest_digest`` pins the check to the manifest the caller is about to load, so an alias moved
        in between cannot slip an unsigned version past it.
        """
        problem = self._signature_problem(ref, trusted_keys, manifest_digest=manifest_digest)
        if problem:
            raise PermissionDenied(
                f"{ref} needs a valid signature from a trusted key, but {problem}; "
                "sign it with `llmops models sign` using a trusted key",
                details={"ref": ref, "rule": "signature"},
            )

    def _signature_problem(
        self, ref: str, trusted_keys: Sequence[str] | None, *, manifest_digest: str | None = None
    ) -> str | None:
        with self.db.read() as session:
            _, version = self._resolve(session, parse_ref(ref))
            signature, digest = version.signature, version.manifest_digest
        if manifest_digest is not None and manifest_digest != digest:
            return "the reference moved to another version while it was checked"
        if not signature:
            return "it is not signed"
        if trusted_keys is not None and signature["public_key"] not in trusted_keys:
            return f"it is signed by key {signature['public_key'][:16]}…, which is not among the trusted keys"
        if not signing.verify(digest, signature["signature"], signature["public_key"]):
            return "its signature does not verify against its manifest digest"
        return None

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEventOut]:
        with self.db.read() as session:
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
            if model is None:
                raise NotFound(f"model {name!r} does not exist")
            query = select(AliasEvent).where(AliasEvent.model_id == model.id).order_by(AliasEvent.id.desc())
            if alias:
                query = query.where(AliasEvent.alias == alias)
            return [
                AliasEventOut(
                    alias=e.alias,
                    from_version=e.from_version,
                    to_version=e.to_version,
                    actor=e.actor,
                    reason=e.reason,
                    ts=e.ts,
                )
                for e in session.scalars(query)
            ]

    def rollback_alias(self, actor: Actor, name: str, alias: str) -> AliasOut:
        """Point an alias back at the version it had before its last move."""
        history = self.alias_history(name, check_alias(alias))
        if not history or history[0].from_version is None:
            raise Conflict(f"alias {name}@{alias} has no previous version to roll back to")
        return self.set_alias(actor, f"{name}:{history[0].from_version}", alias, reason="rollback")

    # lineage and diff ----------------------------------------------------------------------------
    def lineage(self, ref: str, *, bases: bool = True) -> LineageNode:
        """The version with its chain of bases (``bases=False``: without it, for walking down the tree)."""
        with self.db.read() as session:
            _, version = self._resolve(session, parse_ref(ref))
            return self._lineage_node(session, version, depth=0 if bases else 64)

    def _lineage_node(self, session: Session, version: ModelVersion, depth: int) -> LineageNode:
        model = session.get(RegisteredModel, version.model_id)
        assert model is not None
        ref = f"{model.name}:{version.version}"
        datasets: list[str] = []
        if version.run_id:
            run = self.tracking.get_run(version.run_id)
            datasets = [
                e.entity_ref for e in run.lineage if e.direction == "input" and e.entity_kind == "dataset_version"
            ]
        derived = []
        for child in session.scalars(select(ModelVersion).where(ModelVersion.base_version_id == version.id)):
            child_model = session.get(RegisteredModel, child.model_id)
            derived.append(f"{child_model.name}:{child.version}" if child_model else str(child.id))
        base = None
        if version.base_version_id and depth < 64:
            base_row = session.get(ModelVersion, version.base_version_id)
            if base_row is not None:
                base = self._lineage_node(session, base_row, depth + 1)
        return LineageNode(
            ref=ref,
            derivation=version.derivation,
            run_id=version.run_id,
            datasets=datasets,
            base=base,
            derived=sorted(derived),
        )

    def diff(self, a: str, b: str) -> VersionDiff:
        ma, mb = self.manifest(a), self.manifest(b)
        ta, tb = ma.tensors(), mb.tensors()
        with self.db.read() as session:
            digests = {e.digest for _, e in tb.values()}
            rows = {r.digest: r for r in session.scalars(select(TensorObject).where(TensorObject.digest.in_(digests)))}
        changes: list[TensorChange] = []
        for name in sorted(set(ta) | set(tb)):
            ea, eb = ta.get(name), tb.get(name)
            pair = eb if eb is not None else ea
            assert pair is not None
            entry = pair[1]
            row = rows.get(eb[1].digest) if eb is not None else None
            status: Literal["changed", "added", "removed", "unchanged"]
            relative_l2: float | None = None
            if eb is None:
                status = "removed"
            elif ea is None:
                status = "added"
            elif ea[1].digest == eb[1].digest:
                status, relative_l2 = "unchanged", 0.0
            else:
                status, relative_l2 = "changed", self._relative_l2(ea[1], eb[1])
            changes.append(
                TensorChange(
                    name=name,
                    status=status,
                    dtype=entry.dtype,
                    shape=entry.shape,
                    relative_l2=relative_l2,
                    # What b's tensor costs in the store: nothing when it is a's tensor or was removed.
                    stored_bytes=row.stored_size if row is not None and status in ("added", "changed") else 0,
                    encoding=row.encoding if row is not None else None,
                )
            )
        count = {s: sum(1 for c in changes if c.status == s) for s in ("changed", "added", "removed", "unchanged")}
        return VersionDiff(a=a, b=b, tensors=changes, **count)

    def _relative_l2(self, a: TensorEntry, b: TensorEntry) -> float | None:
        """‖b − a‖ / ‖a‖ for float tensors of the same shape (streamed); None when not comparable."""
        dtypes = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None}
        if a.shape != b.shape or a.dtype != b.dtype or a.dtype not in dtypes:
            return None
        num = den = 0.0
        leftover_a = leftover_b = b""
        for ca, cb in zip(self.read_tensor(a, a.name), self.read_tensor(b, b.name), strict=False):
            buf_a, buf_b = leftover_a + ca, leftover_b + cb
            n = min(len(buf_a), len(buf_b))
            n -= n % 8
            xa, xb = _as_float(buf_a[:n], a.dtype), _as_float(buf_b[:n], b.dtype)
            num += float(np.sum((xb - xa) ** 2))
            den += float(np.sum(xa**2))
            leftover_a, leftover_b = buf_a[n:], buf_b[n:]
        if leftover_a:
            xa, xb = _as_float(leftover_a, a.dtype), _as_float(leftover_b, b.dtype)
            num += float(np.sum((xb - xa) ** 2))
            den += float(np.sum(xa**2))
        return math.sqrt(num / den) if den > 0 else (0.0 if num == 0 else math.inf)

    # deletion -------------------------------------------------------------------------------------
    def delete_version(self, actor: Actor, ref: str) -> VersionOut:
        """Delete a version. Refused while other versions derive from it or are stored against its tensors."""
        with self.db.write() as session:
            self.db.lock(session, "registry")
            model, version = self._resolve(session, parse_ref(ref))
            out = self._version_out(session, version)
            if out.aliases:
                raise Conflict(f"{out.ref} carries aliases {', '.join(out.aliases)}; move them first")
            mine = set(
                session.scalars(select(VersionTensor.tensor_digest).where(VersionTensor.version_id == version.id))
            )
            others_need = set(
                session.scalars(
                    select(VersionTensor.tensor_digest).where(
                        VersionTensor.tensor_digest.in_(mine), VersionTensor.version_id != version.id
                    )
                )
            )
            only_mine = mine - others_need
            dependents = session.execute(
                select(RegisteredModel.name, ModelVersion.version)
                .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
                .join(VersionTensor, VersionTensor.version_id == ModelVersion.id)
                .join(TensorObject, TensorObject.digest == VersionTensor.tensor_digest)
                .where(TensorObject.base_digest.in_(only_mine), ModelVersion.id != version.id)
                .distinct()
            ).all()
            if dependents:
                names = ", ".join(f"{n}:{v}" for n, v in sorted(dependents))
                raise Conflict(
                    f"{out.ref} cannot be deleted: {names} store tensors as deltas against it; "
                    "delete or rewrite those first",
                    details={"dependents": [f"{n}:{v}" for n, v in dependents]},
                )
            for child in session.scalars(select(ModelVersion).where(ModelVersion.base_version_id == version.id)):
                child.base_version_id = None  # the derivation stays recorded in the audit log
            session.execute(delete(VersionTensor).where(VersionTensor.version_id == version.id))
            for digest in only_mine:
                row = session.get(TensorObject, digest)
                if row is not None:
                    drop_refs(session, "tensor", digest)
                    session.delete(row)
            session.flush()
            drop_refs(session, "model_version", out.ref)
            session.execute(delete(ModelAlias).where(ModelAlias.version_id == version.id))
            session.delete(version)
            self.audit.append(
                session, actor, "model_version.delete", f"model/{out.ref}", {"manifest": out.manifest_digest}
            )
            return out


def _as_float(data: bytes, dtype: str) -> np.ndarray[Any, Any]:
    if dtype == "BF16":
        raw = np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16
        return raw.view(np.float32).astype(np.float64)
    kind = {"F64": np.float64, "F32": np.float32, "F16": np.float16}[dtype]
    return np.frombuffer(data, dtype=kind).astype(np.float64)


def _convert_pickles(root: Path, pickles: list[str], scratch: Path) -> tuple[Path, dict[str, Any]]:
    """Copy the model to ``scratch`` with each pickle file converted to safetensors in a child process."""
    out = scratch / "model"
    shutil.copytree(root, out, symlinks=False, ignore=shutil.ignore_patterns(*[Path(p).name for p in pickles]))
    converted = []
    for rel in pickles:
        src = root / rel
        target_rel = _safetensors_name(rel)
        result = subprocess.run(
            [sys.executable, "-m", "llmops.registry.convert", str(src), str(out / target_rel)],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["conversion failed"])[-1]
            raise InvalidModel(
                f"{rel} could not be converted with torch.load(weights_only=True): {reason[:500]}",
                details={"file": rel, "rule": "pickle_conversion_failed"},
            )
        converted.append({"from": rel, "to": target_rel})
    index = out / "pytorch_model.bin.index.json"
    if index.exists():
        data = json.loads(index.read_text())
        data["weight_map"] = {k: _safetensors_name(v) for k, v in data.get("weight_map", {}).items()}
        (out / "model.safetensors.index.json").write_text(json.dumps(data, indent=2))
        index.unlink()
    return out, {"method": "torch.load(weights_only=True) in a separate process", "files": converted}


def _safetensors_name(rel: str) -> str:
    path = Path(rel)
    stem = path.stem.replace("pytorch_model", "model")
    return str(path.with_name(f"{stem}.safetensors"))


def _tensors_in(session: Session, digests: Collection[str]) -> set[str]:
    """Those of ``digests`` that have a ``tensor_objects`` row (in bounded IN lists)."""
    found: set[str] = set()
    wanted = sorted(digests)
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        found.update(session.scalars(select(TensorObject.digest).where(TensorObject.digest.in_(part))))
    return found
