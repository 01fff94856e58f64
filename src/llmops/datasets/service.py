"""Dataset versions: import, create from a transform's Parquet output, read, export, diff, lineage, delete.

Writes follow the platform's order. The rows are read and validated into a local Parquet file (hashing
and computing statistics on the way), the file is stored as a content-addressed blob, and only then one
transaction under the ``datasets`` lock numbers the version and records its blob reference, lineage edges
and audit event. A crash before that transaction leaves an unreferenced blob for ``store gc``; no reader
ever sees a version without its file. The ``(dataset, content_digest)`` unique constraint makes "the same
rows are one version" hold even for writers that race past the lock (an IntegrityError is retried once and
then finds the winner's version).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmops.blobs.base import BlobInfo, BlobStore
from llmops.blobs.io import put_path
from llmops.blobs.refs import add_ref, drop_refs
from llmops.datasets import snapshot
from llmops.datasets.kinds import DatasetKind, document_texts, text_columns
from llmops.datasets.read_cache import ReadCache
from llmops.datasets.readers import ColumnMap, Source, open_parquet_source, open_source
from llmops.datasets.refs import DatasetRef, parse_dataset_ref
from llmops.datasets.schemas import (
    ColumnChange,
    ColumnOut,
    DatasetDiff,
    DatasetLineageOut,
    DatasetOut,
    DatasetVersionOut,
    LineageEdgeOut,
    TokenStats,
)
from llmops.datasets.tables import Dataset, DatasetLineage, DatasetVersion
from llmops.db.database import Database
from llmops.errors import InvalidInput, NotFound
from llmops.naming import check_name
from llmops.security.actor import Actor
from llmops.security.audit import AuditLog
from llmops.tracking.service import TrackingService

if TYPE_CHECKING:
    from llmops.registry.cache import ModelCache

Progress = Callable[[str, int, int], None]
OWNER_KIND = "dataset_version"
EXPORT_FORMATS = ("jsonl", "parquet", "csv")
DIFF_EXAMPLES = 5
MAX_LINEAGE_DEPTH = 64


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, ensure_ascii=False, default=snapshot._default))  # type: ignore[no-any-return]


class DatasetService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        audit: AuditLog,
        tracking: TrackingService,
        *,
        scratch: Path,
        model_cache: ModelCache | None = None,
        read_cache: Path | None = None,
        read_cache_bytes: int = 2 << 30,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.audit = audit
        self.tracking = tracking
        self.scratch = Path(scratch)
        self.read_cache = ReadCache(read_cache or self.scratch / "read-cache", blobs, cap_bytes=read_cache_bytes)
        self.model_cache = model_cache

    # writing --------------------------------------------------------------------------------------------
    def import_path(
        self,
        actor: Actor,
        path: Path,
        *,
        name: str,
        kind: DatasetKind | str | None = None,
        fmt: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        columns: ColumnMap | None = None,
        run_id: str | None = None,
        progress: Progress | None = None,
    ) -> DatasetVersionOut:
        """Import a file or directory (JSONL, JSON, CSV, Parquet, text files) as a version of ``name``;
        identical rows return the existing version (``reused_existing_version``)."""
        check_name(name)
        self._check_run(run_id)
        source = open_source(Path(path), fmt=fmt, kind=kind, columns=columns)
        info = {**source.describe(), "path": str(path)}
        return self._store(
            actor, name, source, parents=[], recipe=None, report=None, run_id=run_id, description=description,
            tags=tags, source_info=info, progress=progress,
        )  # fmt: skip

    def create_version_from_parquet(
        self,
        actor: Actor,
        name: str,
        parquet_path: Path,
        *,
        parents: list[str] | None = None,
        recipe: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
        run_id: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        kind: DatasetKind | str | None = None,
        progress: Progress | None = None,
    ) -> DatasetVersionOut:
        """A new version from a Parquet file (a transform's output): validated and re-encoded like an import,
        with lineage to ``parents``, the recipe and the transform report recorded."""
        check_name(name)
        self._check_run(run_id)
        resolved = [self.get(p).ref for p in parents or []]
        source = open_parquet_source(Path(parquet_path), kind=kind)
        return self._store(
            actor, name, source, parents=resolved, recipe=recipe, report=report, run_id=run_id,
            description=description, tags=tags, source_info={"format": "parquet", "derived": True},
            progress=progress,
        )  # fmt: skip

    def _check_run(self, run_id: str | None) -> None:
        if run_id is not None:
            self.tracking.get_run(run_id)  # NotFound names the run

    def _store(
        self,
        actor: Actor,
        name: str,
        source: Source,
        *,
        parents: list[str],
        recipe: dict[str, Any] | None,
        report: dict[str, Any] | None,
        run_id: str | None,
        description: str | None,
        tags: dict[str, str] | None,
        source_info: dict[str, Any] | None,
        progress: Progress | None,
    ) -> DatasetVersionOut:
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="llmops-dataset-", dir=self.scratch) as tmp:
            snap = snapshot.write_snapshot(
                source.kind, source.schema, source.batches, Path(tmp) / "data.parquet", progress=progress
            )
            blob = put_path(self.blobs, snap.path)  # blobs first
        for attempt in range(2):
            try:
                out = self._commit(
                    actor, name, snap, blob, parents=parents, recipe=recipe, report=report, run_id=run_id,
                    description=description, tags=tags, source_info=source_info,
                )  # fmt: skip
                break
            except IntegrityError:
                if attempt:
                    raise
        if run_id and not out.reused_existing_version:
            self.tracking.add_lineage(actor, run_id, "output", "dataset_version", out.ref)
            for parent in parents:
                self.tracking.add_lineage(actor, run_id, "input", "dataset_version", parent)
        return out

    def _commit(
        self,
        actor: Actor,
        name: str,
        snap: snapshot.Snapshot,
        blob: BlobInfo,
        *,
        parents: list[str],
        recipe: dict[str, Any] | None,
        report: dict[str, Any] | None,
        run_id: str | None,
        description: str | None,
        tags: dict[str, str] | None,
        source_info: dict[str, Any] | None,
    ) -> DatasetVersionOut:
        with self.db.write() as session:
            self.db.lock(session, "datasets")
            dataset = session.scalar(select(Dataset).where(Dataset.name == name))
            if dataset is None:
                dataset = Dataset(name=name, created_by=actor.label, last_version=0)
                session.add(dataset)
                session.flush()
                self.audit.append(session, actor, "dataset.create", f"dataset/{name}")
            existing = session.scalar(
                select(DatasetVersion).where(
                    DatasetVersion.dataset_id == dataset.id, DatasetVersion.content_digest == snap.content_digest
                )
            )
            if existing is not None:
                return self._out(session, existing, reused=True)
            number = dataset.last_version + 1
            dataset.last_version = number
            version = DatasetVersion(
                dataset_id=dataset.id,
                version=number,
                kind=snap.kind.value,
                content_digest=snap.content_digest,
                blob_digest=blob.digest,
                rows=snap.rows,
                bytes=snap.bytes,
                columns=snapshot.schema_columns(snap.schema),
                stats=snap.stats,
                recipe=recipe,
                report=report,
                source=source_info,
                run_id=run_id,
                description=description,
                tags=dict(tags or {}),
                created_by=actor.label,
            )
            session.add(version)
            session.flush()
            ref = f"{name}:{number}"
            add_ref(session, blob, OWNER_KIND, ref)
            for parent in dict.fromkeys(parents):
                if parent == ref:
                    continue
                _, parent_row = self._resolve(session, parse_dataset_ref(parent))
                session.add(
                    DatasetLineage(child_version_id=version.id, parent_version_id=parent_row.id, parent_ref=parent)
                )
            session.flush()
            self.audit.append(
                session,
                actor,
                "dataset_version.create",
                f"dataset/{ref}",
                {
                    "content": snap.content_digest,
                    "blob": blob.digest,
                    "kind": snap.kind.value,
                    "rows": snap.rows,
                    "parents": parents,
                    "run": run_id,
                },
            )
            return self._out(session, version)

    # reading --------------------------------------------------------------------------------------------
    def _resolve(self, session: Session, ref: DatasetRef) -> tuple[Dataset, DatasetVersion]:
        dataset = session.scalar(select(Dataset).where(Dataset.name == ref.name))
        if dataset is None:
            raise NotFound(
                f"dataset {ref.name!r} does not exist; import one with `llmops data import PATH --name {ref.name}`"
            )
        query = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
        if ref.version is not None:
            version = session.scalar(query.where(DatasetVersion.version == ref.version))
            if version is None:
                raise NotFound(f"dataset {ref.name!r} has no version {ref.version}")
        else:
            version = session.scalar(query.order_by(DatasetVersion.version.desc()))
            if version is None:
                raise NotFound(f"dataset {ref.name!r} has no versions")
        return dataset, version

    def _out(self, session: Session, version: DatasetVersion, *, reused: bool = False) -> DatasetVersionOut:
        dataset = session.get(Dataset, version.dataset_id)
        assert dataset is not None
        parents = list(
            session.scalars(
                select(DatasetLineage.parent_ref)
                .where(DatasetLineage.child_version_id == version.id)
                .order_by(DatasetLineage.id)
            )
        )
        return DatasetVersionOut(
            dataset=dataset.name,
            version=version.version,
            ref=f"{dataset.name}:{version.version}",
            kind=DatasetKind(version.kind),
            content_digest=version.content_digest,
            blob_digest=version.blob_digest,
            rows=version.rows,
            bytes=version.bytes,
            columns=[ColumnOut(**c) for c in version.columns or []],
            stats=dict(version.stats or {}),
            recipe=version.recipe,
            report=version.report,
            source=version.source,
            parents=parents,
            run_id=version.run_id,
            description=version.description,
            tags=dict(version.tags or {}),
            created_at=version.created_at,
            created_by=version.created_by,
            reused_existing_version=reused,
        )

    def get(self, ref: str) -> DatasetVersionOut:
        with self.db.read() as session:
            _, version = self._resolve(session, parse_dataset_ref(ref))
            return self._out(session, version)

    def _dataset_out(self, session: Session, dataset: Dataset) -> DatasetOut:
        count = session.scalar(select(func.count()).where(DatasetVersion.dataset_id == dataset.id)) or 0
        latest = session.scalar(
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == dataset.id)
            .order_by(DatasetVersion.version.desc())
        )
        return DatasetOut(
            name=dataset.name,
            description=dataset.description,
            created_at=dataset.created_at,
            created_by=dataset.created_by,
            versions=count,
            latest=latest.version if latest else None,
            kind=DatasetKind(latest.kind) if latest else None,
            rows=latest.rows if latest else None,
        )

    def list_datasets(self) -> list[DatasetOut]:
        with self.db.read() as session:
            return [self._dataset_out(session, d) for d in session.scalars(select(Dataset).order_by(Dataset.name))]

    def get_dataset(self, name: str) -> DatasetOut:
        with self.db.read() as session:
            dataset = session.scalar(select(Dataset).where(Dataset.name == name))
            if dataset is None:
                raise NotFound(f"dataset {name!r} does not exist")
            return self._dataset_out(session, dataset)

    def list_versions(self, name: str) -> list[DatasetVersionOut]:
        with self.db.read() as session:
            dataset = session.scalar(select(Dataset).where(Dataset.name == name))
            if dataset is None:
                raise NotFound(f"dataset {name!r} does not exist")
            rows = session.scalars(
                select(DatasetVersion)
                .where(DatasetVersion.dataset_id == dataset.id)
                .order_by(DatasetVersion.version.desc())
            )
            return [self._out(session, v) for v in rows]

    def stats(self, ref: str) -> dict[str, Any]:
        return self.get(ref).stats

    @contextlib.contextmanager
    def open_parquet(self, ref: str) -> Iterator[Path]:
        """A verified local copy of the version's Parquet file (read-only; shared through ``ReadCache``)."""
        yield self.read_cache.path(self.get(ref).blob_digest)

    def iter_batches(
        self, ref: str, *, columns: list[str] | None = None, batch_size: int = 10_000
    ) -> Iterator[pa.RecordBatch]:
        """The rows as record batches, streamed from a verified copy of the file."""
        if columns is not None:
            known = {c.name for c in self.get(ref).columns}
            unknown = [c for c in columns if c not in known]
            if unknown:
                raise InvalidInput(
                    f"{ref} has no column {', '.join(map(repr, unknown))}; it has {', '.join(sorted(known))}"
                )
        with self.open_parquet(ref) as path:
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)

    def texts(self, ref: str) -> Iterator[str]:
        """``document_texts`` of every row, streamed."""
        version = self.get(ref)
        for batch in self.iter_batches(version.ref, columns=list(text_columns(version.kind))):
            yield from document_texts(batch, version.kind)

    def head(self, ref: str, n: int = 10, *, offset: int = 0) -> list[dict[str, Any]]:
        """The first ``n`` rows (after ``offset``) as JSON-ready objects."""
        if n < 0 or offset < 0:
            raise InvalidInput("n and offset must not be negative")
        out: list[dict[str, Any]] = []
        skipped = 0
        if n == 0:
            return out
        for batch in self.iter_batches(ref, batch_size=min(max(n + offset, 1), 10_000)):
            if skipped + batch.num_rows <= offset:
                skipped += batch.num_rows
                continue
            start = max(0, offset - skipped)
            skipped = offset
            for row in batch.slice(start).to_pylist():
                out.append(_json_safe(row))
                if len(out) >= n:
                    return out
        return out

    # export ---------------------------------------------------------------------------------------------
    def export_chunks(self, ref: str, fmt: str = "jsonl") -> Iterator[bytes]:
        """The version as a file of format ``fmt``, in chunks (for HTTP downloads)."""
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput(
                f"format: {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}", details={"field": "format"}
            )
        version = self.get(ref)
        if fmt == "parquet":
            return self._blob_chunks(version.blob_digest)
        return self._text_chunks(version.ref, fmt)

    def _blob_chunks(self, digest: str) -> Iterator[bytes]:
        with self.blobs.open(digest) as fh:
            while chunk := fh.read(1 << 20):
                yield chunk

    def _text_chunks(self, ref: str, fmt: str) -> Iterator[bytes]:
        for i, batch in enumerate(self.iter_batches(ref)):
            lines: list[str] = []
            if fmt == "jsonl":
                for row in batch.to_pylist():
                    lines.append(json.dumps(row, ensure_ascii=False, default=snapshot._default) + "\n")
            else:
                buffer = _CsvBuffer()
                writer = csv.writer(buffer, lineterminator="\n")
                if i == 0:
                    writer.writerow(batch.schema.names)
                for row in batch.to_pylist():
                    writer.writerow([_csv_cell(v) for v in row.values()])
                lines = buffer.parts
            yield "".join(lines).encode()

    def export(self, ref: str, dest: Path, fmt: str = "jsonl") -> Path:
        """Write the version to ``dest`` (jsonl, parquet or csv); the file appears only when complete."""
        dest = Path(dest)
        chunks = self.export_chunks(ref, fmt)
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            with open(partial, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    # diff -----------------------------------------------------------------------------------------------
    def _hashes(self, ref: str) -> np.ndarray[Any, Any]:
        parts = []
        for batch in self.iter_batches(ref):
            parts.append(np.frombuffer(b"".join(h[:8] for h in snapshot.row_hashes(batch)), dtype=np.uint64))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)

    def _examples(self, ref: str, wanted: np.ndarray[Any, Any], limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not wanted.size or limit <= 0:
            return out
        for batch in self.iter_batches(ref):
            hashes = np.frombuffer(b"".join(h[:8] for h in snapshot.row_hashes(batch)), dtype=np.uint64)
            for i in np.nonzero(np.isin(hashes, wanted))[0][: limit - len(out)]:
                out.append(_json_safe(batch.slice(int(i), 1).to_pylist()[0]))
            if len(out) >= limit:
                break
        return out

    def diff(self, a: str, b: str, *, examples: int = DIFF_EXAMPLES) -> DatasetDiff:
        """Rows added and removed (as multisets of row hashes: 8 bytes a row in memory, never whole rows),
        column changes and statistics deltas from version ``a`` to ``b``."""
        va, vb = self.get(a), self.get(b)
        cols_a = {c.name: c.type for c in va.columns}
        cols_b = {c.name: c.type for c in vb.columns}
        changes = [
            ColumnChange(name=n, change="removed", type_a=t, type_b=None) for n, t in cols_a.items() if n not in cols_b
        ]
        changes += [
            ColumnChange(name=n, change="added", type_a=None, type_b=t) for n, t in cols_b.items() if n not in cols_a
        ]
        changes += [
            ColumnChange(name=n, change="type_changed", type_a=t, type_b=cols_b[n])
            for n, t in cols_a.items()
            if n in cols_b and cols_b[n] != t
        ]
        same = va.content_digest == vb.content_digest
        if same:
            common, added_rows, removed_rows = va.rows, np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        else:
            ha, hb = self._hashes(va.ref), self._hashes(vb.ref)
            ua, ca = np.unique(ha, return_counts=True)
            ub, cb = np.unique(hb, return_counts=True)
            _, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
            common = int(np.minimum(ca[ia], cb[ib]).sum())
            added_rows = np.setdiff1d(ub, ua, assume_unique=True)
            removed_rows = np.setdiff1d(ua, ub, assume_unique=True)
        return DatasetDiff(
            a=va.ref,
            b=vb.ref,
            rows_a=va.rows,
            rows_b=vb.rows,
            rows_added=vb.rows - common,
            rows_removed=va.rows - common,
            rows_common=common,
            same_content=same,
            columns=changes,
            stats_delta=_stats_delta(va.stats, vb.stats),
            added_examples=self._examples(vb.ref, added_rows, examples),
            removed_examples=self._examples(va.ref, removed_rows, examples),
        )

    # lineage --------------------------------------------------------------------------------------------
    def lineage(self, ref: str) -> DatasetLineageOut:
        with self.db.read() as session:
            dataset, version = self._resolve(session, parse_dataset_ref(ref))
            full = f"{dataset.name}:{version.version}"
            edges = session.execute(
                select(DatasetLineage.parent_ref, DatasetLineage.parent_version_id)
                .where(DatasetLineage.child_version_id == version.id)
                .order_by(DatasetLineage.id)
            ).all()
            parents = [LineageEdgeOut(ref=r, exists=pid is not None) for r, pid in edges]
            children = sorted(
                f"{n}:{v}"
                for n, v in session.execute(
                    select(Dataset.name, DatasetVersion.version)
                    .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
                    .join(DatasetLineage, DatasetLineage.child_version_id == DatasetVersion.id)
                    .where(DatasetLineage.parent_version_id == version.id)
                )
            )
            ancestors: list[str] = []
            frontier = [pid for _, pid in edges if pid is not None]
            seen = {version.id}
            for _ in range(MAX_LINEAGE_DEPTH):
                if not frontier:
                    break
                next_frontier = []
                for pid in frontier:
                    if pid in seen:
                        continue
                    seen.add(pid)
                    row = session.get(DatasetVersion, pid)
                    if row is None:
                        continue
                    owner = session.get(Dataset, row.dataset_id)
                    ancestors.append(f"{owner.name if owner else '?'}:{row.version}")
                    next_frontier += [
                        p
                        for p in session.scalars(
                            select(DatasetLineage.parent_version_id).where(DatasetLineage.child_version_id == pid)
                        )
                        if p is not None
                    ]
                frontier = next_frontier
            return DatasetLineageOut(
                ref=full,
                parents=parents,
                children=children,
                ancestors=ancestors,
                run_id=version.run_id,
                recipe=version.recipe,
            )

    # deletion -------------------------------------------------------------------------------------------
    def delete_version(self, actor: Actor, ref: str) -> DatasetVersionOut:
        """Delete a version. Lineage is metadata: children keep their edge (``exists: false``) and the parent's
        reference text, so a child stays explainable after its parent is gone."""
        with self.db.write() as session:
            self.db.lock(session, "datasets")
            _, version = self._resolve(session, parse_dataset_ref(ref))
            out = self._out(session, version)
            session.execute(
                update(DatasetLineage)
                .where(DatasetLineage.parent_version_id == version.id)
                .values(parent_version_id=None)
            )
            session.execute(delete(DatasetLineage).where(DatasetLineage.child_version_id == version.id))
            drop_refs(session, OWNER_KIND, out.ref)
            session.delete(version)
            self.audit.append(
                session, actor, "dataset_version.delete", f"dataset/{out.ref}", {"content": out.content_digest}
            )
            return out

    # token statistics -----------------------------------------------------------------------------------
    def token_stats(self, ref: str, tokenizer_ref: str, *, max_length: int | None = None) -> TokenStats:
        """Tokens per character by language and script on a registry model's tokenizer (see ``tokens``)."""
        from llmops.datasets.tokens import token_stats

        if self.model_cache is None:
            raise InvalidInput("token statistics need the model cache; build the service through Platform")
        return token_stats(self, self.model_cache, ref, tokenizer_ref, max_length=max_length)


class _CsvBuffer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def _stats_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """b − a for the numbers worth comparing: sizes, length summaries, language and script shares."""
    out: dict[str, Any] = {}
    for key in ("rows", "bytes", "text_chars", "text_bytes"):
        if isinstance(a.get(key), int | float) and isinstance(b.get(key), int | float):
            out[key] = b[key] - a[key]
    lengths: dict[str, dict[str, float]] = {}
    for column, sa in (a.get("lengths") or {}).items():
        sb = (b.get("lengths") or {}).get(column)
        if not sb:
            continue
        lengths[column] = {
            k: round(sb[k] - sa[k], 4)
            for k in ("min", "mean", "p50", "p90", "p99", "max")
            if isinstance(sa.get(k), int | float) and isinstance(sb.get(k), int | float)
        }
    out["lengths"] = lengths
    for key in ("languages", "scripts"):
        sa, sb = a.get(key) or {}, b.get(key) or {}
        out[key] = {k: round(sb.get(k, 0.0) - sa.get(k, 0.0), 6) for k in sorted(set(sa) | set(sb))}
    return out
