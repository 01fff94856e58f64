"""HTTP routes of the model registry (thin: parse, call ``RegistryService``, render)."""

from __future__ import annotations

import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import PlatformDep, require
from llmops.keyvalue import parse_pairs
from llmops.naming import Name
from llmops.registry.promotion import PromotionPolicy
from llmops.registry.schemas import (
    AliasEventOut,
    AliasOut,
    AliasSet,
    Derivation,
    ImportReport,
    LineageNode,
    ModelOut,
    Strict,
    VersionDetail,
    VersionDiff,
    VersionOut,
)
from llmops.security.actor import Actor
from llmops.security.roles import Permission

router = APIRouter(prefix="/api/v1/models", tags=["models"])
BINARY_SCHEMA = {"type": "string", "format": "binary"}

Reader = Annotated[Actor, Depends(require(Permission.models_read))]
Writer = Annotated[Actor, Depends(require(Permission.models_write))]
Promoter = Annotated[Actor, Depends(require(Permission.models_promote))]
Admin = Annotated[Actor, Depends(require(Permission.models_admin))]
ModelName = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
VersionNo = Annotated[int, Path(ge=1, le=2**31)]
AliasName = Annotated[str, Path(max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")]


class ImportRequest(Strict):
    """Import a directory the server can read; it must lie under one of ``LLMOPS_IMPORT_ROOTS``."""

    path: str = Field(min_length=1, max_length=4096, pattern=r"^[^\x00]*$")
    name: Name
    base: str | None = Field(default=None, max_length=300)
    derivation: Derivation | None = None
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    description: str | None = Field(default=None, max_length=4000)
    tags: dict[str, Annotated[str, Field(max_length=5000)]] = Field(default_factory=dict)
    convert_pickle: bool = False


@router.get("", response_model=list[ModelOut])
def list_models(platform: PlatformDep, actor: Reader) -> list[ModelOut]:
    return platform.registry.list_models()


@router.post("/import", response_model=ImportReport, status_code=201)
async def import_model(body: ImportRequest, platform: PlatformDep, actor: Writer) -> ImportReport:
    platform.registry.check_import_root(FsPath(body.path), platform.settings.import_roots)
    return await run_in_threadpool(
        lambda: platform.registry.import_model(
            actor,
            FsPath(body.path),
            name=body.name,
            base=body.base,
            derivation=body.derivation,
            run_id=body.run_id,
            description=body.description,
            tags=body.tags,
            convert_pickle=body.convert_pickle,
        )
    )


@router.post(
    "/{name}/upload",
    response_model=ImportReport,
    status_code=201,
    # The body is a tar stream; declared as octet-stream, which every client and fuzzer can send.
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": BINARY_SCHEMA}}}},
)
async def upload_model(
    name: ModelName,
    request: Request,
    platform: PlatformDep,
    actor: Writer,
    base: Annotated[str | None, Query(max_length=300)] = None,
    derivation: Derivation | None = None,
    run_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    description: Annotated[str | None, Query(max_length=4000)] = None,
    tag: Annotated[list[str] | None, Query(description="k=v, repeatable")] = None,
    convert_pickle: bool = False,
) -> ImportReport:
    """Import a model directory sent as a tar stream (``tar -c -C DIR .``, optionally gzip-compressed).

    The body is spooled to a file under ``LLMOPS_HOME`` (bounded by ``LLMOPS_MAX_UPLOAD_BYTES``), unpacked
    with the tar ``data`` filter, and imported like a local directory.
    """
    tags = parse_pairs(tag or [], field="tag")
    workdir = platform.settings.home / "tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir) as spool:
        async for chunk in request.stream():
            await run_in_threadpool(spool.write, chunk)
        spool.seek(0)
        return await run_in_threadpool(
            lambda: platform.registry.import_archive(
                actor,
                spool,
                name=name,
                workdir=workdir,
                base=base,
                derivation=derivation,
                run_id=run_id,
                description=description,
                tags=tags,
                convert_pickle=convert_pickle,
            )
        )


@router.get("/{name}/versions", response_model=list[VersionOut])
def list_versions(name: ModelName, platform: PlatformDep, actor: Reader) -> list[VersionOut]:
    return platform.registry.list_versions(name)


@router.get("/{name}/versions/{version}", response_model=VersionDetail)
def get_version(name: ModelName, version: VersionNo, platform: PlatformDep, actor: Reader) -> VersionDetail:
    return platform.registry.get_version(f"{name}:{version}")


@router.get("/{name}/resolve/{alias}", response_model=VersionOut)
def resolve_alias(name: ModelName, alias: AliasName, platform: PlatformDep, actor: Reader) -> VersionOut:
    return platform.registry.get_version(f"{name}@{alias}")


@router.get("/{name}/versions/{version}/manifest")
def get_manifest(name: ModelName, version: VersionNo, platform: PlatformDep, actor: Reader) -> dict[str, Any]:
    return platform.registry.manifest(f"{name}:{version}").model_dump(mode="json")


@router.get("/{name}/versions/{version}/lineage", response_model=LineageNode)
def get_lineage(name: ModelName, version: VersionNo, platform: PlatformDep, actor: Reader) -> LineageNode:
    return platform.registry.lineage(f"{name}:{version}")


@router.get("/diff", response_model=VersionDiff)
async def diff(
    platform: PlatformDep,
    actor: Reader,
    a: Annotated[str, Query(max_length=200, description="name:3")],
    b: Annotated[str, Query(max_length=200)],
) -> VersionDiff:
    return await run_in_threadpool(platform.registry.diff, a, b)


@router.get("/{name}/versions/{version}/files/{path:path}", response_class=StreamingResponse)
def download_file(
    name: ModelName, version: VersionNo, path: str, platform: PlatformDep, actor: Reader
) -> StreamingResponse:
    """One file of a version, rebuilt byte for byte as it streams (tensors verified on the way); clients
    check the ``X-Content-BLAKE3`` header (``X-Content-SHA256`` for versions imported before manifest schema
    2), the whole-file digest the manifest recorded at import."""
    entry, chunks = platform.registry.file_stream(f"{name}:{version}", path)
    algorithm, digest = entry.checksum
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Length": str(entry.size), f"X-Content-{algorithm.upper()}": digest},
    )


@router.get("/{name}/versions/{version}/plan")
def memory_plan(
    name: ModelName,
    version: VersionNo,
    platform: PlatformDep,
    actor: Reader,
    context: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
    batch: Annotated[int, Query(ge=1, le=100_000)] = 1,
    precision: Annotated[str, Query(pattern="^(fp32|fp16|bf16|fp8|int8|int4)$")] = "bf16",
    stages: Annotated[int, Query(ge=1, le=1024)] = 1,
    micro_batches: Annotated[int, Query(ge=1, le=100_000)] = 8,
) -> dict[str, Any]:
    plan = platform.registry.plan(
        f"{name}:{version}",
        context=context,
        batch=batch,
        precision=precision,
        pipeline_stages=stages,
        micro_batches=micro_batches,
    )
    return plan.to_dict()


@router.get("/{name}/versions/{version}/promotion-check", response_model=list[str])
def promotion_check(name: ModelName, version: VersionNo, platform: PlatformDep, actor: Reader) -> list[str]:
    return platform.registry.promotion_check(f"{name}:{version}")


@router.put("/{name}/aliases/{alias}", response_model=AliasOut)
def set_alias(name: ModelName, alias: AliasName, body: AliasSet, platform: PlatformDep, actor: Writer) -> AliasOut:
    return platform.registry.set_alias(actor, f"{name}:{body.version}", alias, reason=body.reason)


@router.post("/{name}/aliases/{alias}/rollback", response_model=AliasOut)
def rollback_alias(name: ModelName, alias: AliasName, platform: PlatformDep, actor: Writer) -> AliasOut:
    return platform.registry.rollback_alias(actor, name, alias)


@router.get("/{name}/aliases/history", response_model=list[AliasEventOut])
def alias_history(
    name: ModelName, platform: PlatformDep, actor: Reader, alias: Annotated[str | None, Query(max_length=64)] = None
) -> list[AliasEventOut]:
    return platform.registry.alias_history(name, alias)


@router.get("/{name}/policy", response_model=PromotionPolicy)
def get_policy(name: ModelName, platform: PlatformDep, actor: Reader) -> PromotionPolicy:
    return platform.registry.get_policy(name)


@router.put("/{name}/policy", response_model=PromotionPolicy)
def set_policy(name: ModelName, body: PromotionPolicy, platform: PlatformDep, actor: Promoter) -> PromotionPolicy:
    return platform.registry.set_policy(actor, name, body)


@router.delete("/{name}/versions/{version}", response_model=VersionOut)
def delete_version(name: ModelName, version: VersionNo, platform: PlatformDep, actor: Admin) -> VersionOut:
    return platform.registry.delete_version(actor, f"{name}:{version}")
