"""``llmops deploy`` and ``llmops deployments …``: declarative deployments with revisions."""

from __future__ import annotations

from typing import Any

import typer

from llmops.cli.context import console, print_json, print_table, short_time, state
from llmops.errors import InvalidInput
from llmops.keyvalue import parse_pairs
from llmops.serving.deployments.schemas import DeploymentOut, OptionValue, RevisionOut

app = typer.Typer(help="Deployments: routes, revisions, promotion and rollback.", no_args_is_help=True)


def parse_options(values: list[str]) -> dict[str, OptionValue]:
    """``k=v`` engine options; numbers and true/false become typed values (``tensor_parallel_size=2``)."""
    out: dict[str, OptionValue] = {}
    for key, raw in parse_pairs(values, field="--option").items():
        value: OptionValue = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(raw)
                    break
                except ValueError:
                    continue
        out[key] = value
    return out


def _policies(
    require_signature: bool | None,
    trusted_key: list[str],
    rpm: int | None,
    tpm: int | None,
    cache: bool | None,
    monitoring: dict[str, Any] | None = None,
) -> dict[str, Any]:
    policies: dict[str, Any] = {}
    if monitoring:
        policies["monitoring"] = monitoring
    if require_signature is not None:
        policies["require_signature"] = require_signature
    if trusted_key:
        policies["trusted_keys"] = trusted_key
    if rpm is not None or tpm is not None:
        policies["rate_limit"] = {"requests_per_minute": rpm, "tokens_per_minute": tpm}
    if cache is not None:
        policies["response_cache"] = cache
    return policies


def deploy_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name (the `model` clients ask for)."),
    model: str | None = typer.Option(None, "--model", help="Primary route: a registry version (name:3, name@alias)."),
    engine: str = typer.Option("torch", "--engine", help="torch, openai-upstream, vllm or embeddings."),
    option: list[str] = typer.Option([], "--option", help="Engine option key=value, repeatable."),
    canary: str | None = typer.Option(None, "--canary", help="A canary route's version."),
    percent: float = typer.Option(10.0, "--percent", help="Share of users (sticky) the canary takes."),
    shadow: str | None = typer.Option(None, "--shadow", help="A shadow route's version (mirrored, discarded)."),
    shadow_percent: float = typer.Option(100.0, "--shadow-percent", help="Share of requests mirrored."),
    require_signature: bool | None = typer.Option(
        None, "--require-signature/--no-require-signature", help="Serve only versions signed by a trusted key."
    ),
    trusted_key: list[str] = typer.Option([], "--trusted-key", help="Trusted Ed25519 public key (hex), repeatable."),
    rpm: int | None = typer.Option(None, "--rpm", help="Requests per minute per key and per user."),
    tpm: int | None = typer.Option(None, "--tpm", help="Tokens per minute per key and per user."),
    cache: bool | None = typer.Option(None, "--response-cache/--no-response-cache", help="Exact-match cache."),
    capture_text: bool | None = typer.Option(
        None, "--capture-text/--no-capture-text", help="Keep prompts and completions for drift and feedback."
    ),
    retention_days: int | None = typer.Option(None, "--retention-days", help="Days kept texts live (default 30)."),
    redact_pii: bool | None = typer.Option(
        None, "--redact-pii/--keep-pii", help="Redact PII in kept texts before storing them (default on)."
    ),
    latency_objective_ms: float | None = typer.Option(
        None, "--latency-objective-ms", help="End-to-end latency objective; slower requests are flagged."
    ),
    description: str | None = typer.Option(None),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the revision and the audit log)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create or change a deployment; each change is a new revision."""
    deployments = state(ctx).platform().deployments
    actor = state(ctx).actor
    options = parse_options(option)
    monitoring = {
        k: v
        for k, v in {
            "capture_text": capture_text,
            "retention_days": retention_days,
            "redact_pii": redact_pii,
            "latency_objective_ms": latency_objective_ms,
        }.items()
        if v is not None
    }
    policies = _policies(require_signature, trusted_key, rpm, tpm, cache, monitoring)
    if model is None and canary is None and shadow is None and not policies:
        raise InvalidInput("nothing to do: give --model (primary), --canary, --shadow or a policy option")
    out: DeploymentOut | None = None
    if model is not None or engine == "openai-upstream" and canary is None and shadow is None:
        out = deployments.deploy(
            actor, name, model=model, engine=engine, engine_options=options, description=description,
            reason=reason, **policies,
        )  # fmt: skip
        policies = {}
    elif policies:
        out = deployments.set_policies(actor, name, reason=reason, **policies)
    if canary is not None:
        out = deployments.set_route(actor, name, mode="canary", model=canary, percent=percent, reason=reason)
    if shadow is not None:
        out = deployments.set_route(actor, name, mode="shadow", model=shadow, percent=shadow_percent, reason=reason)
    assert out is not None
    if as_json:
        print_json(out)
        return
    _print_deployment(out)


@app.command("list")
def list_deployments(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List deployments with their routes."""
    items = state(ctx).platform().deployments.list_deployments()
    if as_json:
        print_json(items)
        return
    print_table(
        "deployments",
        ["name", "revision", "routes", "updated"],
        [(d.name, d.revision, _routes_text(d), short_time(d.updated_at)) for d in items],
    )


@app.command("show")
def show(ctx: typer.Context, name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A deployment's routes and policies, and its revision history."""
    platform = state(ctx).platform()
    out, revisions = platform.deployments.get(name), platform.deployments.revisions(name)
    if as_json:
        print_json({"deployment": out, "revisions": revisions})
        return
    _print_deployment(out)
    _print_revisions(revisions)


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: str,
    route: str = typer.Option("canary", "--route", help="The canary route to promote."),
    reason: str | None = typer.Option(None, "--reason"),
) -> None:
    """The canary becomes the primary and takes all traffic."""
    _print_deployment(state(ctx).platform().deployments.promote(state(ctx).actor, name, route=route, reason=reason))


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: str,
    to: int | None = typer.Option(None, "--to", help="Revision to return to (default: the previous one)."),
    reason: str | None = typer.Option(None, "--reason"),
) -> None:
    """Return to the previous revision (or --to N) in one step; recorded as a new revision."""
    _print_deployment(state(ctx).platform().deployments.rollback(state(ctx).actor, name, to=to, reason=reason))


@app.command("remove-route")
def remove_route(
    ctx: typer.Context, name: str, route: str, reason: str | None = typer.Option(None, "--reason")
) -> None:
    """Remove a canary or shadow route."""
    _print_deployment(state(ctx).platform().deployments.remove_route(state(ctx).actor, name, route, reason=reason))


@app.command("delete")
def delete(ctx: typer.Context, name: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a deployment and its revisions (the audit log keeps the trail)."""
    if not yes:
        typer.confirm(f"delete deployment {name}?", abort=True)
    state(ctx).platform().deployments.delete(state(ctx).actor, name)
    console.print(f"deleted deployment {name}")


def _routes_text(d: DeploymentOut) -> str:
    return ", ".join(
        f"{r.name}: {r.version or r.engine_options.get('base_url')} ({r.engine}"
        + ("" if r.mode == "primary" else f", {r.percent:g} %")
        + ")"
        for r in d.spec.routes
    )


def _options_text(options: dict[str, OptionValue]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _print_deployment(d: DeploymentOut) -> None:
    console.print(f"[bold]{d.name}[/] revision {d.revision}")
    print_table(
        "routes",
        ["route", "mode", "version", "engine", "percent", "options"],
        [
            (r.name, r.mode, r.version or "", r.engine, f"{r.percent:g}", _options_text(r.engine_options))
            for r in d.spec.routes
        ],
    )
    spec = d.spec
    policy = [f"signature required ({len(spec.trusted_keys)} trusted keys)" if spec.require_signature else ""]
    limit = spec.rate_limit
    if limit.requests_per_minute or limit.tokens_per_minute:
        policy.append(f"limits: {limit.requests_per_minute or '∞'} req/min, {limit.tokens_per_minute or '∞'} tok/min")
    if spec.response_cache:
        policy.append("response cache on")
    if spec.monitoring.capture_text:
        kept = "PII redacted" if spec.monitoring.redact_pii else "PII kept"
        policy.append(f"texts kept {spec.monitoring.retention_days} days ({kept})")
    if spec.monitoring.latency_objective_ms:
        policy.append(f"latency objective {spec.monitoring.latency_objective_ms:g} ms")
    text = "; ".join(p for p in policy if p)
    if text:
        console.print(text)


def _print_revisions(revisions: list[RevisionOut]) -> None:
    print_table(
        "revisions",
        ["revision", "change", "routes", "by", "at", "reason"],
        [
            (
                f"{r.revision}{' *' if r.current else ''}",
                r.change,
                ", ".join(f"{x.name}={x.version or x.engine}" for x in r.spec.routes),
                r.created_by,
                short_time(r.created_at),
                r.reason or "",
            )
            for r in revisions
        ],
    )
