"""The ``llmops`` command: wires each domain's Typer commands into one app.

Errors raised by services print as ``error: <message>`` and exit with status 1; usage errors exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from typer.core import TyperGroup

from llmops import __version__
from llmops.blobs.commands import app as store_app
from llmops.cli.context import console, err_console, state
from llmops.cli.system import config_app, db_app
from llmops.datasets.commands import app as data_app
from llmops.errors import LLMOpsError
from llmops.monitoring.commands import alerts_app, costs_command, feedback_app, monitor_app, requests_app
from llmops.registry.commands import app as models_app
from llmops.registry.commands import plan_command
from llmops.security.commands import audit_app, keys_app, users_app
from llmops.serving.bench_commands import app as bench_app
from llmops.serving.deployments.commands import app as deployments_app
from llmops.serving.deployments.commands import deploy_command
from llmops.tracking.commands import app as runs_app
from llmops.training.commands import app as train_app


class _Root(TyperGroup):
    """Turns domain errors and invalid settings into ``error: …`` and exit status 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LLMOpsError as exc:
            err_console.print(f"[red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            err_console.print(f"[red]error:[/] invalid settings: {problems}", highlight=False)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Root,
    name="llmops",
    help="llmops: a self-hosted LLMOps platform. Settings come from LLMOPS_* environment variables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(store_app, name="store")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(deployments_app, name="deployments")
app.add_typer(bench_app, name="bench")
app.add_typer(requests_app, name="requests")
app.add_typer(feedback_app, name="feedback")
app.add_typer(alerts_app, name="alerts")
app.add_typer(monitor_app, name="monitor")
app.command("costs")(costs_command)
app.command("plan")(plan_command)
app.command("deploy")(deploy_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", help="Platform home (overrides LLMOPS_HOME)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    st = state(ctx)
    if home is not None:
        st.overrides["home"] = home
    ctx.call_on_close(st.close)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Bind address (default LLMOPS_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default LLMOPS_PORT, 8080)."),
) -> None:
    """Serve the HTTP API and the UI."""
    from llmops.api.app import create_app
    from llmops.api.server import draining_server
    from llmops.settings import configure_logging

    st = state(ctx)
    settings = st.settings()
    configure_logging(settings.log_level)
    application = create_app(platform=st.platform())
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(f"llmops {__version__} serving on [bold]http://{bind_host}:{bind_port}/[/] (home {settings.home})")
    draining_server(
        application,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
        drain_seconds=settings.drain_seconds,
    ).run()


@app.command("demo")
def demo(
    ctx: typer.Context,
    serve_ui: bool = typer.Option(True, "--serve/--no-serve", help="Serve the UI afterwards."),
    steps: int = typer.Option(300, min=10, max=100_000, help="Training steps per run."),
    traffic: bool = typer.Option(
        True, "--traffic/--no-traffic", help="Send demo traffic (with a planted shift) and write the report."
    ),
    host: str | None = typer.Option(None),
    port: int | None = typer.Option(None),
) -> None:
    """Run the main job on the embedded defaults: initialise, record a tracked training, serve the UI."""
    from llmops.pipelines.demo import run_demo

    st = state(ctx)
    platform = st.platform()
    console.print(f"platform home: [bold]{platform.settings.home}[/]")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"training {name}", total=total)
            bar.update(tasks[name], completed=done)

        result = run_demo(platform, steps=steps, progress=progress, traffic=traffic)
    for run_id in result.train_run_ids:
        run = platform.tracking.get_run(run_id)
        acc = next((m.last for m in run.metrics if m.key == "val/accuracy"), float("nan"))
        console.print(f"run [bold]{run.name}[/] {run.id}: {run.status}, validation accuracy {acc:.3f}")
    console.print(f"compare them: llmops runs compare {' '.join(r[:8] for r in result.train_run_ids)}")
    if result.reference_model:
        console.print(f"reference language model registered: [bold]{result.reference_model}[/]")
    for name in result.deployments:
        console.print(f"deployed [bold]{name}[/]: served at /v1 (OpenAI) and /v2 (KServe) once its engine loads")
    sent = result.traffic
    if sent is not None:
        statuses = ", ".join(f"{n} x {s}" for s, n in sorted(sent.statuses.items()))
        costs = ", ".join(f"{u} {c:.6f} USD" for u, c in sent.cost_by_user.items())
        console.print(f"sent {sent.requests} requests to reference ({statuses}); cost by user: {costs}")
        found = ", ".join(sent.drifted) if sent.drifted else f"nothing ({sent.drift_status})"
        console.print(f"drift in the second half: {found}")
        if sent.dataset:
            console.print(f"{sent.feedback} feedback items became dataset [bold]{sent.dataset}[/]")
        console.print(f"monitoring report: {sent.report} (live: /deployments/reference/monitoring)")
    console.print(f"sign in to the UI as {result.admin_name} with this key (shown once):")
    typer.echo(result.admin_key)
    if serve_ui:
        ctx.invoke(serve, ctx=ctx, host=host, port=port)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
