"""``llmops runs list|show|compare``."""

from __future__ import annotations

import typer

from llmops.cli.context import console, print_json, print_table, short_time, state

app = typer.Typer(help="Tracked runs: training, evaluation, compression, data jobs.", no_args_is_help=True)


def _duration(run: object) -> str:
    started, ended = getattr(run, "started_at"), getattr(run, "ended_at")  # noqa: B009
    if ended is None:
        return ""
    return f"{(ended - started).total_seconds():.1f}s"


@app.command("list")
def runs_list(
    ctx: typer.Context,
    kind: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="running, finished, failed or killed"),
    name: str | None = typer.Option(None, help="Substring of the run name."),
    limit: int = typer.Option(50, min=1, max=500),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List runs, newest first."""
    result = state(ctx).platform().tracking.list_runs(kind=kind, status=status, name=name, limit=limit)
    if as_json:
        print_json(result)
        return
    print_table(
        f"runs ({len(result.runs)} of {result.total})",
        ["id", "name", "kind", "status", "started", "duration", "by"],
        [
            (r.id[:12], r.name, r.kind, r.status, short_time(r.started_at), _duration(r), r.created_by)
            for r in result.runs
        ],
    )


@app.command("show")
def runs_show(ctx: typer.Context, run_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a run: params, tags, metric summaries, artifacts, lineage."""
    platform = state(ctx).platform()
    run = platform.tracking.get_run(platform.tracking.resolve_id(run_id))
    if as_json:
        print_json(run)
        return
    console.print(
        f"[bold]{run.name}[/] ({run.kind}) {run.id}  status [bold]{run.status}[/]"
        f"  started {short_time(run.started_at)}  {_duration(run)}  by {run.created_by}"
    )
    if run.end_reason:
        console.print(f"end reason: {run.end_reason}")
    if run.params:
        print_table("params", ["key", "value"], sorted(run.params.items()))
    if run.tags:
        print_table("tags", ["key", "value"], sorted(run.tags.items()))
    if run.metrics:
        print_table(
            "metrics",
            ["key", "last", "min", "max", "last step", "points"],
            [(m.key, f"{m.last:.6g}", f"{m.min:.6g}", f"{m.max:.6g}", m.last_step, m.count) for m in run.metrics],
        )
    if run.artifacts:
        print_table("artifacts", ["path", "size", "digest"], [(a.path, a.size, a.digest[:16]) for a in run.artifacts])
    if run.lineage:
        print_table(
            "lineage", ["direction", "kind", "ref"], [(e.direction, e.entity_kind, e.entity_ref) for e in run.lineage]
        )


@app.command("compare")
def runs_compare(ctx: typer.Context, run_ids: list[str], as_json: bool = typer.Option(False, "--json")) -> None:
    """Compare runs side by side: params (differences marked) and last metric values."""
    platform = state(ctx).platform()
    result = platform.tracking.compare([platform.tracking.resolve_id(r) for r in run_ids])
    if as_json:
        print_json(result)
        return
    headers = ["", *[f"{r.name} {r.id[:8]}" for r in result.runs]]
    rows = []
    for key in result.param_keys:
        mark = "* " if key in result.differing_params else "  "
        rows.append([f"{mark}{key}", *[r.params.get(key, "") for r in result.runs]])
    for key in result.metric_keys:
        values = []
        for r in result.runs:
            m = next((m for m in r.metrics if m.key == key), None)
            values.append(f"{m.last:.6g}" if m else "")
        rows.append([f"  {key} (last)", *values])
    print_table("comparison (* = params that differ)", headers, rows)
