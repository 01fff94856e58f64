"""HTTP routes of datasets (thin: parse, call ``DatasetService``, render)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import PlatformDep, require
from llmops.datasets.readers import SUFFIX_FORMATS, ColumnMap
from llmops.datasets.schemas import (
    CleanOut,
    CleanRequest,
    DatasetDiff,
    DatasetLineageOut,
    DatasetOut,
    DatasetVersionOut,
    TokenStats,
)
from llmops.naming import name_problem
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.security.roles import Permission

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

Reader = Annotated[Actor, Depends(require(Permission.datasets_read))]
Writer = Annotated[Actor, Depends(require(Permission.datasets_write))]
Admin = Annotated[Actor, Depends(require(Permission.datasets_admin))]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
DatasetName = Annotated[str, Path(max_length=128, pattern=NAME_PATTERN)]
VersionNo = Annotated[int, Path(ge=1, le=2**31 - 1)]
Ref = Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9]{1,10})?$")]
OptionalColumn = Annotated[str | None, Form(min_length=1, max_length=256, pattern=r"^[^\x00]+$")]
MEDIA_TYPES = {"parquet": "application/vnd.apache.parquet", "jsonl": "application/jsonl", "csv": "text/csv"}


@router.get("", response_model=list[DatasetOut])
def list_datasets(platform: PlatformDep, actor: Reader) -> list[DatasetOut]:
    return platform.datasets.list_datasets()


def _upload_name(filename: str | None) -> str:
    """The uploaded file's base name when it is a safe name (errors then name it), else a neutral one."""
    base = FsPath(filename or "").name
    if base and name_problem(base) is None:
        return base
    suffix = FsPath(base).suffix.lower()
    return f"upload{suffix if suffix in SUFFIX_FORMATS else ''}"


def _import_upload(platform: Platform, actor: Actor, upload: UploadFile, **options: Any) -> DatasetVersionOut:
    scratch = platform.datasets.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmops-upload-", dir=scratch) as tmp:
        path = FsPath(tmp) / _upload_name(upload.filename)
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        return platform.datasets.import_path(actor, path, **options)


@router.post("/import", response_model=DatasetVersionOut, status_code=201)
async def import_upload(
    platform: PlatformDep,
    actor: Writer,
    file: Annotated[UploadFile, File(description="JSONL, JSON, CSV or Parquet; the name's suffix tells the format")],
    name: Annotated[str, Form(min_length=1, max_length=128, pattern=NAME_PATTERN)],
    kind: Annotated[Literal["text", "prompt_completion", "chat"] | None, Form()] = None,
    format: Annotated[Literal["jsonl", "json", "csv", "parquet", "text"] | None, Form()] = None,
    description: Annotated[str | None, Form(max_length=4000, pattern=r"^[^\x00]*$")] = None,
    text_column: OptionalColumn = None,
    prompt_column: OptionalColumn = None,
    completion_column: OptionalColumn = None,
    messages_column: OptionalColumn = None,
) -> DatasetVersionOut:
    """Import an uploaded file (multipart, bounded by ``LLMOPS_MAX_UPLOAD_BYTES``) as a dataset version."""
    columns = ColumnMap(text=text_column, prompt=prompt_column, completion=completion_column, messages=messages_column)
    return await run_in_threadpool(
        lambda: _import_upload(
            platform, actor, file, name=name, kind=kind, fmt=format, description=description, columns=columns
        )
    )


@router.get("/diff", response_model=DatasetDiff)
def diff(platform: PlatformDep, actor: Reader, a: Ref, b: Ref) -> DatasetDiff:
    return platform.datasets.diff(a, b)


@router.get("/{name}", response_model=DatasetOut)
def get_dataset(name: DatasetName, platform: PlatformDep, actor: Reader) -> DatasetOut:
    return platform.datasets.get_dataset(name)


@router.get("/{name}/versions", response_model=list[DatasetVersionOut])
def list_versions(name: DatasetName, platform: PlatformDep, actor: Reader) -> list[DatasetVersionOut]:
    return platform.datasets.list_versions(name)


@router.get("/{name}/versions/{version}", response_model=DatasetVersionOut)
def get_version(name: DatasetName, version: VersionNo, platform: PlatformDep, actor: Reader) -> DatasetVersionOut:
    return platform.datasets.get(f"{name}:{version}")


@router.get("/{name}/versions/{version}/rows")
def rows(
    name: DatasetName,
    version: VersionNo,
    platform: PlatformDep,
    actor: Reader,
    limit: Annotated[int, Query(ge=0, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**40)] = 0,
) -> list[dict[str, Any]]:
    return platform.datasets.head(f"{name}:{version}", limit, offset=offset)


@router.get("/{name}/versions/{version}/download", response_class=StreamingResponse)
def download(
    name: DatasetName,
    version: VersionNo,
    platform: PlatformDep,
    actor: Reader,
    format: Annotated[Literal["parquet", "jsonl", "csv"], Query()] = "parquet",
) -> StreamingResponse:
    """The version as a file: the stored Parquet (verified as it streams), or JSON lines or CSV."""
    ref = f"{name}:{version}"
    out = platform.datasets.get(ref)
    headers = {"Content-Disposition": f'attachment; filename="{name}-{version}.{format}"'}
    if format == "parquet":
        headers |= {"Content-Length": str(out.bytes), "X-Blob-Digest": out.blob_digest}
    return StreamingResponse(
        platform.datasets.export_chunks(ref, format), media_type=MEDIA_TYPES[format], headers=headers
    )


@router.get("/{name}/versions/{version}/stats")
def stats(name: DatasetName, version: VersionNo, platform: PlatformDep, actor: Reader) -> dict[str, Any]:
    return platform.datasets.stats(f"{name}:{version}")


@router.get("/{name}/versions/{version}/token-stats", response_model=TokenStats)
def token_stats(
    name: DatasetName,
    version: VersionNo,
    platform: PlatformDep,
    actor: Reader,
    tokenizer: Annotated[str, Query(min_length=1, max_length=300, pattern=r"^[^\x00]+$", description="model ref")],
    max_length: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
) -> TokenStats:
    return platform.datasets.token_stats(f"{name}:{version}", tokenizer, max_length=max_length)


@router.get("/{name}/versions/{version}/lineage", response_model=DatasetLineageOut)
def lineage(name: DatasetName, version: VersionNo, platform: PlatformDep, actor: Reader) -> DatasetLineageOut:
    return platform.datasets.lineage(f"{name}:{version}")


@router.post("/{name}/clean", response_model=CleanOut, status_code=201)
def clean(name: DatasetName, body: CleanRequest, platform: PlatformDep, actor: Writer) -> CleanOut:
    """Run a recipe (the YAML document as JSON) over a version; the result is a new version with lineage."""
    from llmops.datasets.clean import clean_dataset

    ref = f"{name}:{body.version}" if body.version else name
    platform.datasets.get(ref)  # NotFound before any work
    scratch = platform.datasets.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmops-recipe-", dir=scratch) as tmp:
        recipe = FsPath(tmp) / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(body.recipe, allow_unicode=True), encoding="utf-8")
        result = clean_dataset(platform, actor, ref, recipe, name=body.output_name)
    return CleanOut(version=result.version, report=result.report)


@router.delete("/{name}/versions/{version}", response_model=DatasetVersionOut)
def delete_version(name: DatasetName, version: VersionNo, platform: PlatformDep, actor: Admin) -> DatasetVersionOut:
    return platform.datasets.delete_version(actor, f"{name}:{version}")
