"""``llmops requests …``, ``costs``, ``feedback …`` and ``alerts …``: monitoring from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from llmops.cli.context import console, print_json, print_table, short_time, state
from llmops.errors import InvalidInput
from llmops.monitoring.alerts import parse_rules
from llmops.monitoring.routes import costs_csv
from llmops.monitoring.schemas import SIGNALS, RequestOut, RequestQuery, parse_time

requests_app = typer.Typer(help="Stored requests: who asked what, how fast, at what cost.", no_args_is_help=True)
feedback_app = typer.Typer(help="Feedback on served requests, and its export as a dataset.", no_args_is_help=True)


def _query(
    deployment: str | None,
    version: str | None,
    user: str | None,
    key: str | None,
    since: str | None,
    until: str | None,
    **extra: Any,
) -> RequestQuery:
    fields = {"deployment": deployment, "version": version, "user": user, "key": key, "since": since, "until": until}
    try:
        return RequestQuery.model_validate({**fields, **extra})  # since/until: text the model parses
    except ValidationError as exc:
        raise InvalidInput("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc


@requests_app.command("list")
def list_requests(
    ctx: typer.Context,
    deployment: str | None = typer.Option(None, "--deployment", "-d"),
    version: str | None = typer.Option(None, "--version", help="Model version served (name:3)."),
    user: str | None = typer.Option(None, "--user"),
    key: str | None = typer.Option(None, "--key", help="API key prefix."),
    since: str | None = typer.Option(None, "--since", help="7d, 24h, 30m or an ISO time."),
    until: str | None = typer.Option(None, "--until"),
    status: int | None = typer.Option(None, "--status"),
    errors: bool = typer.Option(False, "--errors", help="Only failed requests (status >= 400)."),
    signal: str | None = typer.Option(None, "--signal", help=f"Only requests flagged: {', '.join(SIGNALS)}."),
    shadow: bool = typer.Option(False, "--shadow", help="Include shadow copies."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Stored requests, newest first."""
    if signal is not None and signal not in SIGNALS:
        raise InvalidInput(f"--signal {signal!r}: choose one of {', '.join(SIGNALS)}")
    query = _query(
        deployment, version, user, key, since, until,
        status=status, errors_only=errors, signal=signal, include_shadow=shadow, limit=limit,
    )  # fmt: skip
    items = state(ctx).platform().requests.list_requests(query)
    if as_json:
        print_json(items)
        return
    print_table(
        "requests",
        ["time", "request", "deployment", "version", "user", "status", "tokens", "latency", "cost", "flags"],
        [
            (
                short_time(r.started_at),
                r.request_id,
                r.deployment + ("" if r.mode == "primary" else f" ({r.mode})"),
                r.version or "",
                r.user or "",
                r.status,
                f"{r.prompt_tokens}+{r.completion_tokens}",
                f"{r.latency * 1000:.0f} ms",
                f"{r.cost:.6f} {r.currency}",
                _flags(r),
            )
            for r in items
        ],
    )


def _flags(r: RequestOut) -> str:
    return ",".join(name for name in SIGNALS if r.signals.get(name))


@requests_app.command("show")
def show_request(ctx: typer.Context, request_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One request: numbers, quality signals, kept texts, feedback (and its shadow copies)."""
    rows = state(ctx).platform().requests.get(request_id)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        console.print(f"[bold]{r.request_id}[/] {r.mode} → {r.deployment}/{r.route} ({r.version}) status {r.status}")
        ttft = f"{r.time_to_first_token * 1000:.0f} ms" if r.time_to_first_token is not None else "-"
        console.print(
            f"  user {r.user or '-'} key {r.key_prefix or '-'}; {r.prompt_tokens} prompt + {r.completion_tokens} "
            f"completion tokens; TTFT {ttft}; latency {r.latency * 1000:.0f} ms; cost {r.cost:.6f} {r.currency}; "
            f"finish {r.finish_reason or '-'}"
        )
        flags = _flags(r)
        if flags:
            console.print(f"  flags: {flags}")
        if r.prompt is not None:
            console.print(f"  prompt: {r.prompt}", markup=False)
        if r.completion is not None:
            console.print(f"  completion: {r.completion}", markup=False)
        for f in r.feedback or []:
            console.print(f"  feedback by {f['created_by']}: {f['kind']} {f['score']} {f['label'] or ''} "
                          f"{f['comment'] or ''}", markup=False)  # fmt: skip


def costs_command(
    ctx: typer.Context,
    by: list[str] = typer.Option(["user"], "--by", help="user, key, deployment, version or day; repeatable."),
    since: str = typer.Option("7d", "--since", help="7d, 24h or an ISO date."),
    until: str | None = typer.Option(None, "--until"),
    deployment: str | None = typer.Option(None, "--deployment", "-d"),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write the table as CSV here ('-' for stdout)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cost, requests and tokens grouped by user, key, deployment, version and/or day (UTC days)."""
    rows = (
        state(ctx)
        .platform()
        .requests.costs(
            by,
            since=parse_time(since, field="--since"),
            until=parse_time(until, field="--until") if until else None,
            deployment=deployment,
        )
    )
    if csv_path is not None:
        text = costs_csv(rows, by)
        if str(csv_path) == "-":
            typer.echo(text, nl=False)
        else:
            csv_path.write_text(text)
            console.print(f"wrote {len(rows)} rows to {csv_path}")
        return
    if as_json:
        print_json(rows)
        return
    dims = [b for b in by if b != "currency"]
    print_table(
        f"costs since {since}",
        [*dims, "requests", "errors", "prompt tokens", "completion tokens", "cost"],
        [
            (
                *(r.group.get(d) or "-" for d in dims),
                r.requests,
                r.errors,
                r.prompt_tokens,
                r.completion_tokens,
                f"{r.cost:.6f} {r.currency}",
            )
            for r in rows
        ],
    )


@feedback_app.command("export")
def export_feedback(
    ctx: typer.Context,
    to_dataset: str = typer.Option(..., "--to-dataset", help="Dataset name; a new version is made."),
    kind: str = typer.Option("chat", "--kind", help="chat or prompt_completion."),
    deployment: str | None = typer.Option(None, "--deployment", "-d"),
    version: str | None = typer.Option(None, "--version"),
    user: str | None = typer.Option(None, "--user"),
    since: str | None = typer.Option(None, "--since"),
    until: str | None = typer.Option(None, "--until"),
    min_score: float | None = typer.Option(None, "--min-score", help="Average feedback score at least (0..1)."),
    max_score: float | None = typer.Option(None, "--max-score"),
    label: str | None = typer.Option(None, "--label"),
    all_requests: bool = typer.Option(False, "--all", help="Also requests without feedback."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Turn served requests and their corrections into a dataset version (lineage back to the requests)."""
    if kind not in ("chat", "prompt_completion"):
        raise InvalidInput(f"--kind {kind!r}: choose chat or prompt_completion")
    platform = state(ctx).platform()
    version_out = platform.feedback.export_dataset(
        state(ctx).actor,
        to_dataset,
        _query(deployment, version, user, None, since, until),
        kind=kind,  # type: ignore[arg-type]
        min_score=min_score,
        max_score=max_score,
        label=label,
        with_feedback_only=not all_requests,
    )
    if as_json:
        print_json(version_out)
        return
    console.print(f"created dataset version {version_out.ref} with {version_out.rows} rows")


alerts_app = typer.Typer(help="Alert rules and events.", no_args_is_help=True)


@alerts_app.command("list")
def list_alerts(
    ctx: typer.Context,
    all_events: bool = typer.Option(False, "--all", help="Also acknowledged events."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Alert events, newest first (unacknowledged ones unless --all)."""
    events = state(ctx).platform().alerts.events(open_only=not all_events, limit=limit)
    if as_json:
        print_json(events)
        return
    print_table(
        "alerts",
        ["id", "fired", "rule", "state", "message", "acked"],
        [(e.id, short_time(e.fired_at), e.rule, e.state, e.message, e.acked_by or "") for e in events],
    )


@alerts_app.command("ack")
def ack_alert(ctx: typer.Context, event_id: int) -> None:
    """Acknowledge an alert event."""
    event = state(ctx).platform().alerts.ack(state(ctx).actor, event_id)
    console.print(f"acknowledged alert {event.id} ({event.rule}, {event.state})")


@alerts_app.command("apply")
def apply_rules(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="YAML file with a `rules:` list."),
    keep: bool = typer.Option(False, "--keep", help="Keep stored rules that the file does not name."),
) -> None:
    """Make the stored alert rules those of a YAML file (errors name the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read alert rules {path}: {exc}") from exc
    rules = parse_rules(text, source=f"alert rules {path}")
    stored = state(ctx).platform().alerts.apply_rules(state(ctx).actor, rules, prune=not keep)
    console.print(f"{len(stored)} alert rules in force: {', '.join(r.name for r in stored)}")


@alerts_app.command("rules")
def show_rules(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The alert rules in force."""
    rules = state(ctx).platform().alerts.rules()
    if as_json:
        print_json(rules)
        return
    print_table(
        "alert rules",
        ["name", "deployment", "condition", "window", "min requests", "actions"],
        [
            (r.name, r.deployment or "all", f"{r.metric} {r.op} {r.threshold:g}", r.window, r.min_requests,
             ", ".join(a.type for a in r.actions))
            for r in rules
        ],
    )  # fmt: skip


@alerts_app.command("evaluate")
def evaluate(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Evaluate every rule now (a cron job can call this; `llmops serve` does it on a schedule)."""
    results = state(ctx).platform().alerts.evaluate()
    if as_json:
        print_json(results)
        return
    print_table(
        "evaluation",
        ["rule", "status", "value", "requests", "event"],
        [
            (r.rule, r.status, "-" if r.value is None else f"{r.value:.6g}", r.requests,
             f"fired {r.fired}" if r.fired else (f"resolved {r.resolved}" if r.resolved else ""))
            for r in results
        ],
    )  # fmt: skip


monitor_app = typer.Typer(help="A deployment's traffic, quality and drift.", no_args_is_help=True)


@monitor_app.command("report")
def monitor_report(
    ctx: typer.Context,
    deployment: str,
    window: str = typer.Option("24h", "--window", help="The current window: 24h, 7d, 30m."),
    reference: str = typer.Option(
        "previous", "--reference", help="previous (the window before), a duration before it (7d), dataset:NAME:V."
    ),
    embeddings: bool = typer.Option(False, "--embeddings", help="Add MiniLM embedding drift (slower)."),
    perplexity: bool = typer.Option(False, "--perplexity", help="Add prompt perplexity under the reference model."),
    out: Path = typer.Option(Path("monitoring-report.html"), "--out", "-o", help="Where to write the HTML."),
) -> None:
    """Write a self-contained HTML report: latency, throughput, cost by user, quality signals and drift."""
    from llmops.monitoring.report import render_report

    platform = state(ctx).platform()
    platform.deployments.get(deployment)
    summary, drift = platform.monitor.view(
        deployment, window=window, reference=reference, embeddings=embeddings, perplexity=perplexity
    )
    out.write_text(render_report(summary, drift), encoding="utf-8")
    verdict = (
        f"not enough data ({drift.reason})"
        if drift.status != "ok"
        else ("drift in " + ", ".join(drift.drifted) if drift.drift else "no drift found")
    )
    console.print(f"wrote {out}: {summary.requests} requests in the last {window}; {verdict}")


@monitor_app.command("drift")
def monitor_drift(
    ctx: typer.Context,
    deployment: str,
    window: str = typer.Option("24h", "--window"),
    reference: str = typer.Option("previous", "--reference"),
    embeddings: bool = typer.Option(False, "--embeddings"),
    perplexity: bool = typer.Option(False, "--perplexity"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Drift of prompts and completions against the reference, check by check."""
    drift = (
        state(ctx)
        .platform()
        .monitor.drift(deployment, window=window, reference=reference, embeddings=embeddings, perplexity=perplexity)
    )
    if as_json:
        print_json(drift.to_dict())
        return
    if drift.status != "ok":
        console.print(f"not enough data: {drift.reason}")
        return
    rows: list[tuple[Any, ...]] = []
    for field in (drift.prompts, drift.completions):
        for c in field.numeric:
            rows.append((field.field, c.name, c.method, c.statistic, c.psi, "yes" if c.drift else c.reason or "no"))
        for k in field.categorical:
            rows.append(
                (field.field, f"{k.name} mix", k.method, k.statistic, k.psi, "yes" if k.drift else k.reason or "no")
            )
        cl = field.classifier
        rows.append(
            (field.field, "domain classifier", cl.method, cl.auc, None, "yes" if cl.drift else cl.reason or "no")
        )
        if field.embedding is not None:
            e = field.embedding
            rows.append((field.field, "embeddings MMD²", "mmd", e.mmd2, None, "yes" if e.drift else e.reason or "no"))
    print_table(
        f"{drift.current_label} against {drift.reference_label}",
        ["field", "check", "method", "statistic", "PSI", "drift"],
        [(f, n, m, "-" if s is None else f"{s:.4g}", "-" if p is None else f"{p:.3f}", d) for f, n, m, s, p, d in rows],
    )
