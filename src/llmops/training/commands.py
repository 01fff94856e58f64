"""``llmops train …``: training recipes from the command line (thin: parse, call the recipe, render)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from llmops.cli.context import console, state

app = typer.Typer(help="Training recipes (tracked runs that register their model).", no_args_is_help=True)


@app.command("reference")
def reference(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", help="Recipe YAML (default: the built-in config)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Override the number of optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint in --out."),
    out: Path = typer.Option(Path("build/reference-lm"), "--out", help="Working directory: data, checkpoints, model."),
) -> None:
    """Train the byte-level BPE tokenizer and the reference Llama; register it as reference-lm."""
    from llmops.training.reference import load_config, train_reference

    st = state(ctx)
    recipe = load_config(config, steps=steps)
    platform = st.platform()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bar:
        task: list[TaskID] = []

        def progress(done: int, total: int) -> None:
            if not task:
                task.append(bar.add_task("training", total=total, completed=done - 1))
            bar.update(task[0], completed=done)

        result = train_reference(platform, recipe, out, resume=resume, actor=st.actor, progress=progress)
    m = result.metrics
    console.print(f"run {result.run_id}: steps {result.start_step}→{result.steps}, {result.tokens_seen} tokens")
    console.print(
        f"validation perplexity {m['validation_perplexity']:.2f} "
        f"(bigram {m['bigram_perplexity']:.2f}, unigram {m['unigram_perplexity']:.2f})"
    )
    console.print(f"model directory: {result.model_dir}")
    if result.model_ref:
        console.print(f"registered [bold]{result.model_ref}[/]")
