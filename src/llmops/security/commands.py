"""``llmops users …``, ``llmops keys …`` and ``llmops audit …``."""

from __future__ import annotations

import datetime as dt

import typer

from llmops.cli.context import console, print_json, print_table, short_time, state

users_app = typer.Typer(help="Principals: users and service accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

ROLE_HELP = "viewer, developer, maintainer or admin"


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    name: str,
    role: str = typer.Option("viewer", help=ROLE_HELP),
    service: bool = typer.Option(False, "--service", help="A service account rather than a person."),
    email: str | None = typer.Option(None),
) -> None:
    """Create a principal."""
    st = state(ctx)
    p = st.platform().security.create_principal(
        st.actor, name, kind="service" if service else "user", role=role, email=email
    )
    console.print(
        f"created {p.kind} [bold]{p.name}[/] with role {p.role}; "
        f"give it a key with `llmops keys create --user {p.name}`"
    )


@users_app.command("list")
def users_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List principals."""
    rows = state(ctx).platform().security.list_principals()
    if as_json:
        print_json(rows)
        return
    print_table(
        "principals",
        ["name", "kind", "role", "disabled", "created", "by"],
        [(p.name, p.kind, p.role, "yes" if p.disabled else "", short_time(p.created_at), p.created_by) for p in rows],
    )


@users_app.command("set-role")
def users_set_role(ctx: typer.Context, name: str, role: str = typer.Argument(..., help=ROLE_HELP)) -> None:
    """Change a principal's role."""
    st = state(ctx)
    p = st.platform().security.update_principal(st.actor, name, role=role)
    console.print(f"{p.name} is now {p.role}")


@users_app.command("disable")
def users_disable(ctx: typer.Context, name: str) -> None:
    """Disable a principal: its keys stop working."""
    st = state(ctx)
    st.platform().security.update_principal(st.actor, name, disabled=True)
    console.print(f"{name} disabled")


@users_app.command("enable")
def users_enable(ctx: typer.Context, name: str) -> None:
    """Enable a disabled principal."""
    st = state(ctx)
    st.platform().security.update_principal(st.actor, name, disabled=False)
    console.print(f"{name} enabled")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="The principal that owns the key."),
    name: str = typer.Option("default", help="A label for the key."),
    expires_days: int | None = typer.Option(None, "--expires-days", min=1, help="Days until the key expires."),
    scope: list[str] = typer.Option(  # noqa: B008
        [], "--scope", help="A deployment scope the key carries (repeatable); deployments with scopes need one."
    ),
) -> None:
    """Create an API key. The key is printed once and never stored."""
    st = state(ctx)
    expires = dt.timedelta(days=expires_days) if expires_days else None
    key = st.platform().security.create_key(st.actor, principal=user, name=name, expires_in=expires, scopes=scope)
    console.print(f"API key for [bold]{user}[/] (prefix {key.prefix}); store it now, it is not shown again:")
    typer.echo(key.key)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context, user: str | None = typer.Option(None, "--user"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """List API keys (prefixes only; secrets are never stored)."""
    st = state(ctx)
    rows = st.platform().security.list_keys(st.actor, user)
    if as_json:
        print_json(rows)
        return
    print_table(
        "API keys",
        ["prefix", "principal", "name", "scopes", "created", "expires", "revoked", "last used"],
        [
            (
                k.prefix,
                k.principal,
                k.name,
                ",".join(k.scopes),
                short_time(k.created_at),
                short_time(k.expires_at),
                short_time(k.revoked_at),
                short_time(k.last_used_at),
            )
            for k in rows
        ],
    )


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, prefix: str) -> None:
    """Revoke an API key by its prefix."""
    st = state(ctx)
    key = st.platform().security.revoke_key(st.actor, prefix)
    console.print(f"revoked key {key.prefix} of {key.principal}")


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    limit: int = typer.Option(50, min=1, max=10000),
    actor: str | None = typer.Option(None),
    action: str | None = typer.Option(None, help="Prefix, e.g. run. or key.create"),
    target: str | None = typer.Option(None, help="Prefix, e.g. run/ or principal/alice"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List audit events, newest first."""
    rows = state(ctx).platform().audit.list(limit=limit, actor=actor, action=action, target=target)
    if as_json:
        print_json(rows)
        return
    print_table(
        "audit log",
        ["seq", "time", "actor", "action", "target", "details"],
        [(e.seq, short_time(e.ts), e.actor, e.action, e.target, e.details or "") for e in rows],
    )


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    expect_head: str | None = typer.Option(None, "--expect-head", help="A head hash recorded earlier."),
) -> None:
    """Check the hash chain; exit 1 when an event was edited or deleted."""
    result = state(ctx).platform().audit.verify(expect_head=expect_head)
    for problem in result.problems:
        console.print(f"[red]{problem}[/]")
    if result.ok:
        console.print(f"[green]audit log intact[/]: {result.checked} events, head {result.head_hash}")
    else:
        console.print(f"[red]audit log tampered[/]: {len(result.problems)} problem(s) in {result.checked} events")
        raise typer.Exit(1)
