"""``llmops models …``: import, list, show, pull, aliases, lineage, diff, signatures, policies, delete."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.tree import Tree

from llmops.cli.context import console, human_size, print_json, print_table, short_time, state
from llmops.errors import InvalidInput
from llmops.keyvalue import parse_pairs
from llmops.registry.promotion import PromotionPolicy
from llmops.registry.schemas import LineageNode
from llmops.registry.signing import generate_keypair

app = typer.Typer(help="The model registry.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases: movable names on versions (production, staging, …).", no_args_is_help=True)
policy_app = typer.Typer(help="Promotion policies for protected aliases.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")
app.add_typer(policy_app, name="policy")


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@app.command("import")
def import_model(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A Hugging Face, PEFT or sentence-transformers model directory."),
    name: str = typer.Option(..., "--name", help="Model name; each import adds a version."),
    base: str | None = typer.Option(None, "--base", help="The version this one derives from (name:3 or name@alias)."),
    derivation: str | None = typer.Option(
        None, help="import, finetune, quantize, prune, distill or merge (default: finetune with --base)."
    ),
    run: str | None = typer.Option(None, "--run", help="The run that produced it (lineage)."),
    description: str | None = typer.Option(None),
    tag: list[str] = typer.Option([], "--tag", help="key=value, repeatable."),
    convert_pickle: bool = typer.Option(
        False, "--convert-pickle", help="Convert pickle weights with torch.load(weights_only=True) in a child process."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import a model directory as a new version (tensors deduplicated, deltas against --base)."""
    st = state(ctx)
    platform = st.platform()
    run_id = platform.tracking.resolve_id(run) if run else None
    with _bar() as bar:
        task = bar.add_task("importing", total=None)
        report = platform.registry.import_model(
            st.actor,
            path,
            name=name,
            base=base,
            description=description,
            tags=parse_pairs(tag, field="--tag"),
            derivation=derivation,
            run_id=run_id,
            convert_pickle=convert_pickle,
            progress=lambda stage, done, total: bar.update(task, description=stage, completed=done, total=total),
        )
    if as_json:
        print_json(report)
        return
    v = report.version
    if report.reused_existing_version:
        console.print(f"identical to [bold]{v.ref}[/]: nothing new stored")
        return
    console.print(
        f"imported [bold]{v.ref}[/] ({v.format}, {v.architecture or 'unknown architecture'}, "
        f"{v.parameters:,} parameters): {report.tensors} tensors, {report.deduplicated_tensors} already stored, "
        f"{report.delta_tensors} as deltas, {report.compressed_tensors} compressed; "
        f"{human_size(report.logical_bytes)} logical, {human_size(report.stored_bytes)} newly stored"
    )


@app.command("list")
def list_models(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List models."""
    models = state(ctx).platform().registry.list_models()
    if as_json:
        print_json(models)
        return
    print_table(
        "models",
        ["name", "versions", "latest", "aliases", "created", "by"],
        [
            (
                m.name,
                m.versions,
                m.latest,
                ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())),
                short_time(m.created_at),
                m.created_by,
            )
            for m in models
        ],
    )


@app.command("versions")
def list_versions(ctx: typer.Context, name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """List a model's versions, newest first."""
    versions = state(ctx).platform().registry.list_versions(name)
    if as_json:
        print_json(versions)
        return
    print_table(
        f"versions of {name}",
        ["ref", "format", "architecture", "params", "logical", "stored", "base", "aliases", "created"],
        [
            (
                v.ref,
                v.format,
                v.architecture,
                f"{v.parameters:,}",
                human_size(v.logical_bytes),
                human_size(v.physical_bytes),
                v.base or "",
                ", ".join(v.aliases),
                short_time(v.created_at),
            )
            for v in versions
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: str,
    tensors: bool = typer.Option(False, "--tensors", help="List every tensor and how it is stored."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The card of a version: architecture, parameters, dtype, context, files, logical and stored bytes."""
    d = state(ctx).platform().registry.get_version(ref)
    if as_json:
        print_json(d)
        return
    print_table(
        f"{d.ref}",
        ["", ""],
        [
            ("format", d.format),
            ("architecture", d.architecture or ""),
            ("parameters", f"{d.parameters:,}"),
            ("dtype", d.dtype or ""),
            ("context length", d.context_length or ""),
            ("logical bytes", human_size(d.logical_bytes)),
            ("newly stored bytes", human_size(d.physical_bytes)),
            ("base", d.base or ""),
            ("derivation", d.derivation),
            ("run", d.run_id or ""),
            ("aliases", ", ".join(d.aliases)),
            ("manifest digest", d.manifest_digest),
            ("signed", f"by key {d.signature['public_key'][:16]}…" if d.signature else "no"),
            ("converted from pickle", "yes" if d.conversion else "no"),
            ("created", f"{short_time(d.created_at)} by {d.created_by}"),
        ],
    )
    print_table(
        "files",
        ["path", "size", "kind", "tensors", "digest"],
        [(f.path, human_size(f.size), f.kind, f.tensors or "", f.digest[:23]) for f in d.files],
    )
    if tensors:
        print_table(
            "tensors",
            ["file", "name", "dtype", "shape", "bytes", "stored as", "stored bytes"],
            [
                (t.file, t.name, t.dtype, "×".join(map(str, t.shape)), t.bytes, t.encoding, t.stored_bytes)
                for t in d.tensors
            ],
        )


@app.command("pull")
def pull(
    ctx: typer.Context,
    ref: str,
    dest: Path,
    fsync: bool | None = typer.Option(
        None,
        "--fsync/--no-fsync",
        help="fsync every file before DEST appears (default: LLMOPS_STORE_FSYNC, true); --no-fsync leaves "
        "write-back to the OS, like cp",
    ),
) -> None:
    """Rebuild a version's files in DEST (every tensor and file verified; nothing left on failure)."""
    platform = state(ctx).platform()
    durable = platform.settings.store_fsync if fsync is None else fsync
    with _bar() as bar:
        task = bar.add_task("writing", total=None)
        out = platform.registry.pull(
            ref,
            dest,
            progress=lambda stage, done, total: bar.update(task, completed=done, total=total),
            durable=durable,
        )
    console.print(f"{ref} written to {out}")


@app.command("lineage")
def lineage(ctx: typer.Context, ref: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """The ancestry of a version (base chain, producing runs, datasets) and what derives from it."""
    node = state(ctx).platform().registry.lineage(ref)
    if as_json:
        print_json(node)
        return

    def label(n: LineageNode) -> str:
        extra = [n.derivation]
        if n.run_id:
            extra.append(f"run {n.run_id[:12]}")
        if n.datasets:
            extra.append("datasets " + ", ".join(n.datasets))
        return f"[bold]{n.ref}[/] ({'; '.join(extra)})"

    tree = Tree(label(node))
    for child in node.derived:
        tree.add(f"derived: {child}")
    branch, current = tree, node.base
    while current is not None:
        branch = branch.add(f"base: {label(current)}")
        current = current.base
    console.print(tree)


@app.command("diff")
def diff(
    ctx: typer.Context,
    a: str,
    b: str,
    as_json: bool = typer.Option(False, "--json"),
    all_tensors: bool = typer.Option(False, "--all", help="Also list unchanged tensors."),
) -> None:
    """Changed, added and removed tensors between two versions, with relative L2 change and storage cost."""
    result = state(ctx).platform().registry.diff(a, b)
    if as_json:
        print_json(result)
        return
    rows = [
        (
            t.status,
            t.name,
            t.dtype or "",
            "×".join(map(str, t.shape or ())),
            "" if t.relative_l2 is None else f"{t.relative_l2:.3e}",
            human_size(t.stored_bytes) if t.stored_bytes else "",
            t.encoding or "",
        )
        for t in result.tensors
        if all_tensors or t.status != "unchanged"
    ]
    print_table(
        f"{a} → {b}: {result.changed} changed, {result.added} added, {result.removed} removed, "
        f"{result.unchanged} unchanged",
        ["", "tensor", "dtype", "shape", "rel. L2", "stored", "as"],
        rows,
    )


@app.command("delete")
def delete(ctx: typer.Context, ref: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a version (refused while other versions are stored as deltas against it)."""
    if not yes:
        typer.confirm(f"delete {ref}?", abort=True)
    st = state(ctx)
    out = st.platform().registry.delete_version(st.actor, ref)
    console.print(f"deleted {out.ref}; run `llmops store gc` to reclaim blobs no longer referenced")


@app.command("sign")
def sign(
    ctx: typer.Context, ref: str, key: Path = typer.Option(..., "--key", help="Ed25519 private key (PEM).")
) -> None:
    """Sign a version's manifest digest with an Ed25519 key."""
    st = state(ctx)
    signature = st.platform().registry.sign(st.actor, ref, key)
    console.print(f"signed {ref} with public key {signature['public_key']}")


@app.command("verify")
def verify(
    ctx: typer.Context,
    ref: str,
    trusted_key: list[str] = typer.Option([], "--trusted-key", help="Accept only these public keys (hex)."),
) -> None:
    """Check a version's signature; exit 1 when missing, invalid or untrusted."""
    ok = state(ctx).platform().registry.verify_signature(ref, trusted_keys=trusted_key or None)
    console.print(f"{ref}: signature {'valid' if ok else '[red]missing, invalid or untrusted[/]'}")
    if not ok:
        raise typer.Exit(1)


@app.command("keygen")
def keygen(path: Path) -> None:
    """Create an Ed25519 key pair for signing (PATH and PATH.pub.pem)."""
    public = generate_keypair(path)
    console.print(f"wrote {path} (keep it secret) and {path.with_suffix('.pub.pem')}; public key {public}")


@app.command("check")
def check(ctx: typer.Context, ref: str) -> None:
    """Which promotion requirements a version meets for the model's protected aliases; exit 1 if any fail."""
    failures = state(ctx).platform().registry.promotion_check(ref)
    for failure in failures:
        console.print(f"[red]✗[/] {failure}")
    if failures:
        raise typer.Exit(1)
    console.print(f"{ref} satisfies the promotion policy")


@alias_app.command("set")
def alias_set(ctx: typer.Context, ref: str, alias: str, reason: str | None = typer.Option(None)) -> None:
    """Point ALIAS at the version REF (protected aliases need evidence and the maintainer role)."""
    st = state(ctx)
    out = st.platform().registry.set_alias(st.actor, ref, alias, reason=reason)
    console.print(f"{alias} → version {out.version}")


@alias_app.command("history")
def alias_history(
    ctx: typer.Context,
    name: str,
    alias: str | None = typer.Argument(None),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Who moved which alias when, from which version to which."""
    events = state(ctx).platform().registry.alias_history(name, alias)
    if as_json:
        print_json(events)
        return
    print_table(
        f"alias history of {name}",
        ["time", "alias", "from", "to", "by", "reason"],
        [(short_time(e.ts), e.alias, e.from_version or "", e.to_version, e.actor, e.reason or "") for e in events],
    )


@alias_app.command("rollback")
def alias_rollback(ctx: typer.Context, name: str, alias: str) -> None:
    """Move ALIAS back to the version it pointed at before its last move."""
    st = state(ctx)
    out = st.platform().registry.rollback_alias(st.actor, name, alias)
    console.print(f"{name}@{alias} rolled back to version {out.version}")


@policy_app.command("show")
def policy_show(ctx: typer.Context, name: str) -> None:
    """Print the model's promotion policy (YAML)."""
    policy = state(ctx).platform().registry.get_policy(name)
    console.print(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False), highlight=False)


@policy_app.command("set")
def policy_set(ctx: typer.Context, name: str, file: Path = typer.Option(..., "--file", help="Policy YAML.")) -> None:
    """Set the model's promotion policy from a YAML file."""
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{file}: not valid YAML: {exc}") from None
    from pydantic import ValidationError

    try:
        policy = PromotionPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"{file}: {problems}") from None
    st = state(ctx)
    st.platform().registry.set_policy(st.actor, name, policy)
    console.print(f"policy of {name} updated")


def plan_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="A model version: name, name:3 or name@alias."),
    context: int | None = typer.Option(None, "--context", help="Tokens of context (default: the model's maximum)."),
    batch: int = typer.Option(1, "--batch", help="Concurrent sequences."),
    precision: str = typer.Option("bf16", "--precision", help="fp32, fp16, bf16, fp8, int8 or int4."),
    kv_precision: str | None = typer.Option(
        None, "--kv-precision", help="KV cache precision (default: follows weights)."
    ),
    lora_rank: int = typer.Option(16, "--lora-rank"),
    micro_batches: int = typer.Option(8, "--micro-batches", help="For the pipeline bubble."),
    stages: int = typer.Option(1, "--stages", help="Pipeline-parallel stages."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Memory plan: weights at each precision, KV cache, training memory, and which accelerators it fits."""
    result = (
        state(ctx)
        .platform()
        .registry.plan(
            ref,
            context=context,
            batch=batch,
            precision=precision,
            kv_precision=kv_precision,
            lora_rank=lora_rank,
            micro_batches=micro_batches,
            pipeline_stages=stages,
        )
    )
    if as_json:
        print_json(result.to_dict())
        return
    print_table(f"memory plan of {ref}", ["", ""], result.rows())
