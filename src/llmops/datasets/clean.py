"""``clean_dataset``: run a recipe over a dataset version and store the result as a child version.

The work happens inside a tracked run (kind ``data``, tag ``transform=clean``) so that every cleaned version
points to the run that made it, and the run records the parent as input, the child as output, the recipe and
executor as params, rows in/out and per-step counts as metrics and the full report as an artifact. The child
version is created only after the executor has written the whole output, so a run killed half-way leaves no
version (and the run is marked killed or failed).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.datasets.executor import Executor, InProcessExecutor
from llmops.datasets.recipe import Recipe, load_recipe
from llmops.datasets.schemas import DatasetVersionOut
from llmops.security.actor import Actor

if TYPE_CHECKING:
    from llmops.platform import Platform

RUN_KIND = "data"
"""Tracking run kind of a cleaning run (the tracking service's kind for data jobs)."""


@dataclass
class CleanResult:
    """The child version, the transform report stored with it, and the id of the run that made it."""

    version: DatasetVersionOut
    report: dict[str, Any]
    run_id: str


def _metrics(report: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {"rows_in": report["rows_in"], "rows_out": report["rows_out"]}
    for step in report["steps"]:
        prefix = f"step{step['position']}.{step['step']}"
        metrics[f"{prefix}.removed"] = step["removed"]
        metrics[f"{prefix}.changed"] = step["changed"]
    return metrics


def clean_dataset(
    platform: Platform,
    actor: Actor,
    ref: str,
    recipe: Recipe | Path | str,
    *,
    executor: Executor | None = None,
    name: str | None = None,
) -> CleanResult:
    """Run ``recipe`` over the version ``ref`` with ``executor`` (in-process by default) and store the output
    as a new version of ``name`` (default: the parent's dataset), with lineage, recipe and report."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    parent = platform.datasets.get(ref)
    executor = executor or InProcessExecutor()
    target = name or parent.dataset
    params = {
        "parent": parent.ref,
        "output": target,
        "executor": executor.name,
        "steps": ",".join(step for step, _ in recipe.configs()),
    }
    if recipe.name:
        params["recipe"] = recipe.name
    scratch = Path(platform.datasets.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    with platform.start_run(
        kind=RUN_KIND,
        name=f"clean-{parent.dataset}-v{parent.version}",
        params=params,
        tags={"transform": "clean"},
        actor=actor,
    ) as run:
        run.add_input("dataset_version", parent.ref)
        run.log_dict(recipe.model_dump(), "recipe.json")
        with (
            platform.datasets.open_parquet(parent.ref) as source,
            tempfile.TemporaryDirectory(prefix="llmops-clean-", dir=scratch) as tmp,
        ):
            output = Path(tmp) / "clean.parquet"
            report = executor.run(recipe, source, output, kind=parent.kind)
            version = platform.datasets.create_version_from_parquet(
                actor,
                target,
                output,
                parents=[parent.ref],
                recipe=recipe.model_dump(mode="json"),
                report=report,
                run_id=run.id,
                kind=parent.kind,
            )
        run.log_metrics(_metrics(report))
        run.log_dict(report, "report.json")
        run.add_output("dataset_version", version.ref)
        return CleanResult(version=version, report=report, run_id=run.id)
