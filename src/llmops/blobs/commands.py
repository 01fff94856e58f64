"""``llmops store stats|fsck|gc``."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmops.cli.context import console, human_size, print_json, print_table, state

app = typer.Typer(help="The content-addressed blob store.", no_args_is_help=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@app.command("stats")
def stats(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Count blobs and bytes, referenced and unreferenced."""
    result = state(ctx).platform().store.stats()
    if as_json:
        print_json(asdict(result))
        return
    print_table(
        f"blob store {result.url}",
        ["", "blobs", "bytes"],
        [
            ("stored", result.blobs, human_size(result.bytes)),
            ("referenced", result.referenced_blobs, human_size(result.referenced_bytes)),
            ("unreferenced", result.unreferenced_blobs, human_size(result.unreferenced_bytes)),
            ("missing (referenced, not stored)", result.missing, ""),
        ],
    )


@app.command("fsck")
def fsck(
    ctx: typer.Context,
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Re-hash every blob (slow on big stores)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check that every referenced blob exists and every stored blob matches its digest. Exit 1 if not."""
    platform = state(ctx).platform()
    with _progress() as progress:
        task = progress.add_task("verifying blobs", total=None)
        report = platform.store.fsck(
            verify_content=verify, progress=lambda d, t: progress.update(task, completed=d, total=t)
        )
    if as_json:
        print_json({"clean": report.clean, **asdict(report)})
    else:
        for digest, owners in report.missing.items():
            console.print(f"[red]missing[/] {digest} referenced by {', '.join(owners)}")
        for digest in report.corrupted:
            console.print(f"[red]corrupted[/] {digest}")
        verdict = "[green]clean[/]" if report.clean else "[red]problems found[/]"
        console.print(
            f"{verdict}: {report.checked} blobs verified, {len(report.missing)} missing, "
            f"{len(report.corrupted)} corrupted"
        )
    if not report.clean:
        raise typer.Exit(1)


@app.command("gc")
def gc(
    ctx: typer.Context,
    grace: float | None = typer.Option(None, help="Seconds; default LLMOPS_BLOB_GC_GRACE_SECONDS."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove unreferenced blobs older than the grace period, and leftovers of interrupted writes."""
    platform = state(ctx).platform()
    grace_seconds = grace if grace is not None else platform.settings.blob_gc_grace_seconds
    with _progress() as progress:
        task = progress.add_task("scanning blobs", total=None)
        report = platform.store.gc(
            grace_seconds=grace_seconds,
            dry_run=dry_run,
            progress=lambda d, t: progress.update(task, completed=d, total=t),
        )
    if as_json:
        print_json(asdict(report))
        return
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {len(report.removed)} unreferenced blobs ({human_size(report.bytes_freed)}); "
        f"kept {report.kept_young} younger than {grace_seconds:g}s; "
        f"{report.partial_removed} interrupted writes cleaned"
    )
