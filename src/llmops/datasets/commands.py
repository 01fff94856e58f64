"""``llmops data …``: import, list, show, head, export, diff, stats, lineage, delete, clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from llmops.cli.context import console, human_size, print_json, print_table, short_time, state
from llmops.datasets.readers import FORMATS, ColumnMap
from llmops.datasets.schemas import DatasetVersionOut, TokenGroup
from llmops.errors import InvalidInput
from llmops.keyvalue import parse_pairs

app = typer.Typer(help="Datasets: versioned, content-addressed Parquet snapshots.", no_args_is_help=True)


def _summary(v: DatasetVersionOut) -> str:
    return f"{v.kind.value}, {v.rows:,} rows, {human_size(v.bytes)} Parquet"


@app.command("import")
def import_dataset(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A JSONL, JSON, CSV or Parquet file, or a directory of text files."),
    name: str = typer.Option(..., "--name", help="Dataset name; each distinct content adds a version."),
    kind: str | None = typer.Option(None, help="text, prompt_completion or chat (default: from the columns)."),
    fmt: str | None = typer.Option(None, "--format", help=f"{', '.join(FORMATS)} (default: from the file name)."),
    text_column: str | None = typer.Option(None, help="Source column to use as 'text'."),
    prompt_column: str | None = typer.Option(None, help="Source column to use as 'prompt'."),
    completion_column: str | None = typer.Option(None, help="Source column to use as 'completion'."),
    messages_column: str | None = typer.Option(None, help="Source column to use as 'messages'."),
    description: str | None = typer.Option(None),
    tag: list[str] = typer.Option([], "--tag", help="key=value, repeatable."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import a file or directory as a dataset version (the same rows again: the existing version)."""
    st = state(ctx)
    columns = ColumnMap(text=text_column, prompt=prompt_column, completion=completion_column, messages=messages_column)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("reading", total=None)
        version = st.platform().datasets.import_path(
            st.actor,
            path,
            name=name,
            kind=kind,
            fmt=fmt,
            description=description,
            tags=parse_pairs(tag, field="--tag"),
            columns=columns,
            progress=lambda stage, done, total: bar.update(task, description=f"{done:,} {stage}"),
        )
    if as_json:
        print_json(version)
    elif version.reused_existing_version:
        console.print(f"identical to [bold]{version.ref}[/]: nothing new stored")
    else:
        console.print(f"imported [bold]{version.ref}[/] ({_summary(version)})")


@app.command("list")
def list_datasets(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="A dataset: list its versions instead."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List datasets, or the versions of one."""
    datasets = state(ctx).platform().datasets
    if name is not None:
        versions = datasets.list_versions(name)
        if as_json:
            print_json(versions)
            return
        print_table(
            f"versions of {name}",
            ["ref", "kind", "rows", "size", "parents", "created", "by"],
            [
                (
                    v.ref,
                    v.kind.value,
                    f"{v.rows:,}",
                    human_size(v.bytes),
                    ", ".join(v.parents),
                    short_time(v.created_at),
                    v.created_by,
                )
                for v in versions
            ],
        )
        return
    items = datasets.list_datasets()
    if as_json:
        print_json(items)
        return
    print_table(
        "datasets",
        ["name", "versions", "latest", "kind", "rows", "created", "by"],
        [
            (
                d.name,
                d.versions,
                d.latest,
                d.kind.value if d.kind else "",
                f"{d.rows:,}" if d.rows is not None else "",
                short_time(d.created_at),
                d.created_by,
            )
            for d in items
        ],
    )


def _dist_row(name: str, d: dict[str, Any]) -> tuple[Any, ...]:
    return (name, d.get("min"), d.get("mean"), d.get("p50"), d.get("p90"), d.get("p99"), d.get("max"))


@app.command("show")
def show(ctx: typer.Context, ref: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A version: kind, size, columns, statistics, lineage, recipe."""
    v = state(ctx).platform().datasets.get(ref)
    if as_json:
        print_json(v)
        return
    console.print(f"[bold]{v.ref}[/] {_summary(v)}; content {v.content_digest[:16]}…")
    console.print(f"created {short_time(v.created_at)} by {v.created_by}" + (f"; run {v.run_id}" if v.run_id else ""))
    if v.description:
        console.print(v.description)
    if v.parents:
        console.print(f"parents: {', '.join(v.parents)}")
    console.print("columns: " + ", ".join(f"{c.name} ({c.type})" for c in v.columns))
    lengths = v.stats.get("lengths", {})
    rows = [_dist_row(f"{name} (chars)", d) for name, d in lengths.items()]
    if "turns" in v.stats:
        rows.append(_dist_row("turns", v.stats["turns"]))
    print_table("lengths", ["column", "min", "mean", "p50", "p90", "p99", "max"], rows)
    for key in ("languages", "scripts"):
        shares = v.stats.get(key) or {}
        if shares:
            top = ", ".join(f"{k} {s:.1%}" for k, s in list(shares.items())[:8])
            console.print(f"{key}: {top} (sample of {v.stats.get('language_sample_rows', 0):,} rows)")
    if v.recipe:
        console.print("recipe: " + json.dumps(v.recipe, ensure_ascii=False)[:500])


@app.command("head")
def head(
    ctx: typer.Context,
    ref: str,
    n: int = typer.Option(5, "-n", "--rows", min=0, max=100_000, help="How many rows."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The first rows of a version (JSON lines)."""
    rows = state(ctx).platform().datasets.head(ref, n)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(json.dumps(row, ensure_ascii=False))


@app.command("export")
def export(
    ctx: typer.Context,
    ref: str,
    dest: Path = typer.Argument(..., help="Output file."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, parquet or csv."),
) -> None:
    """Write a version to a file."""
    out = state(ctx).platform().datasets.export(ref, dest, fmt)
    console.print(f"wrote {out} ({human_size(out.stat().st_size)})")


@app.command("diff")
def diff(ctx: typer.Context, a: str, b: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Rows added and removed, column changes and statistics deltas from A to B."""
    d = state(ctx).platform().datasets.diff(a, b)
    if as_json:
        print_json(d)
        return
    if d.same_content:
        console.print(f"{d.a} and {d.b} hold the same rows")
        return
    console.print(
        f"{d.a} → {d.b}: {d.rows_added:,} rows added, {d.rows_removed:,} removed, {d.rows_common:,} in common "
        f"({d.rows_a:,} → {d.rows_b:,})"
    )
    for c in d.columns:
        console.print(f"column {c.name}: {c.change} ({c.type_a or '-'} → {c.type_b or '-'})")
    for column, delta in d.stats_delta.get("lengths", {}).items():
        console.print(f"{column} chars: " + ", ".join(f"{k} {v:+g}" for k, v in delta.items()))
    for label, rows in (("added", d.added_examples), ("removed", d.removed_examples)):
        for row in rows:
            console.print(f"{label}: " + json.dumps(row, ensure_ascii=False)[:300], highlight=False)


def _token_rows(groups: list[TokenGroup]) -> list[tuple[Any, ...]]:
    return [
        (
            g.group,
            f"{g.rows:,}",
            f"{g.characters:,}",
            f"{g.tokens:,}",
            f"{g.tokens_per_char:.3f}" if g.tokens_per_char is not None else "",
            f"{g.ratio_vs_english:.2f}×" if g.ratio_vs_english is not None else "",
        )
        for g in groups
    ]


@app.command("stats")
def stats(
    ctx: typer.Context,
    ref: str,
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="A model version whose tokenizer to count with."),
    max_length: int | None = typer.Option(None, "--max-length", min=1, help="Context limit to check rows against."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Statistics of a version; with --tokenizer, token costs by language and script."""
    datasets = state(ctx).platform().datasets
    if tokenizer is None:
        v = datasets.get(ref)
        if as_json:
            print_json(v.stats)
            return
        ctx.invoke(show, ctx=ctx, ref=ref, as_json=False)
        return
    t = datasets.token_stats(ref, tokenizer, max_length=max_length)
    if as_json:
        print_json(t)
        return
    cols = ["language", "rows", "chars", "tokens", "tokens/char", "× English"]
    print_table(f"{t.ref} on the tokenizer of {t.tokenizer}", cols, _token_rows(t.by_language))
    print_table("by script", ["script", *cols[1:-1], "× Latin"], _token_rows(t.by_script))
    lengths = t.token_lengths
    console.print(
        f"{t.rows_measured:,} of {t.rows:,} rows measured: {t.tokens:,} tokens, "
        f"{t.tokens_per_char or 0:.3f} per character; tokens per row p50 {lengths.get('p50')}, "
        f"p90 {lengths.get('p90')}, p99 {lengths.get('p99')}, max {lengths.get('max')}"
    )
    if t.max_length is not None:
        console.print(
            f"{t.rows_over_max_length:,} rows ({(t.share_over_max_length or 0):.1%}) exceed {t.max_length:,} tokens"
        )


@app.command("lineage")
def lineage(ctx: typer.Context, ref: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Parents, ancestors and children of a version."""
    out = state(ctx).platform().datasets.lineage(ref)
    if as_json:
        print_json(out)
        return
    console.print(f"[bold]{out.ref}[/]" + (f" (run {out.run_id})" if out.run_id else ""))
    for p in out.parents:
        console.print(f"  parent: {p.ref}" + ("" if p.exists else " (deleted)"))
    if out.ancestors:
        console.print(f"  ancestors: {', '.join(out.ancestors)}")
    for c in out.children:
        console.print(f"  child: {c}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="name:N"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask."),
) -> None:
    """Delete a version (its rows become garbage for `store gc` unless another version holds them)."""
    if ":" not in ref:
        raise InvalidInput(f"{ref!r}: name the version to delete (name:N)")
    if not yes:
        typer.confirm(f"delete {ref}?", abort=True)
    out = state(ctx).platform().datasets.delete_version(state(ctx).actor, ref)
    console.print(f"deleted {out.ref}")


@app.command("clean")
def clean(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset reference (name or name:N) to clean."),
    recipe: Path = typer.Option(..., "--recipe", help="YAML recipe of transforms."),
    executor: str = typer.Option("inprocess", "--executor", help="inprocess or ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster address (default: local)."),
    output_name: str | None = typer.Option(None, "--output-name", help="Dataset to write (default: the same)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a recipe over a version and store the result as a new version with lineage and a report."""
    from llmops.datasets.clean import clean_dataset

    st = state(ctx)
    platform = st.platform()
    result = clean_dataset(
        platform, st.actor, name, recipe, executor=_executor(executor, ray_address), name=output_name
    )
    if as_json:
        print_json({"version": result.version, "report": result.report})
        return
    v = result.version
    note = " (identical to an existing version)" if v.reused_existing_version else ""
    console.print(f"cleaned {name} → [bold]{v.ref}[/] ({_summary(v)}){note}")
    steps = result.report.get("steps") if isinstance(result.report, dict) else None
    if isinstance(steps, list):
        for step in steps:
            if isinstance(step, dict):
                console.print(
                    "  " + ", ".join(f"{k}: {val}" for k, val in step.items() if not isinstance(val, list | dict))
                )


def _executor(kind: str, address: str | None) -> Any:
    """The executor a recipe runs on; ``None`` lets ``clean_dataset`` choose its in-process default."""
    if kind == "inprocess":
        if address:
            raise InvalidInput("--ray-address needs --executor ray")
        return None
    if kind == "ray":
        from llmops.datasets.ray_executor import RayExecutor

        return RayExecutor(address=address)
    raise InvalidInput(f"--executor {kind!r}: use inprocess or ray")
