"""HTTP routes for blob store statistics and checks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import PlatformDep, require
from llmops.security.actor import Actor
from llmops.security.roles import Permission

router = APIRouter(prefix="/api/v1/store", tags=["store"])


@router.get("/stats")
async def store_stats(
    platform: PlatformDep, actor: Annotated[Actor, Depends(require(Permission.store_read))]
) -> dict[str, Any]:
    return asdict(await run_in_threadpool(platform.store.stats))


@router.post("/fsck")
async def store_fsck(
    platform: PlatformDep, actor: Annotated[Actor, Depends(require(Permission.store_admin))], verify: bool = True
) -> dict[str, Any]:
    report = await run_in_threadpool(lambda: platform.store.fsck(verify_content=verify))
    return {"clean": report.clean, **asdict(report)}
