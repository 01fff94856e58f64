"""Deployment state: create, change by revisions, promote, roll back, delete — every change audited.

Each change writes a new immutable revision and points the deployment at it, so history is complete and
"undo" is one step: ``rollback`` makes a new revision with the spec that was in force before the current
one (like ``kubectl rollout undo``; rolling back twice returns to where it started). Model references are
resolved to pinned versions when a revision is written, and checked against the engine (an embedding
engine needs a sentence-transformers version, a generation engine a causal LM) and against the
deployment's signature requirement, so a revision that could not serve is never recorded.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from llmops.db.base import utcnow
from llmops.db.database import Database
from llmops.errors import Conflict, InvalidInput, NotFound
from llmops.naming import check_name
from llmops.registry.service import RegistryService
from llmops.security.actor import Actor
from llmops.security.audit import AuditLog
from llmops.serving.deployments.schemas import (
    DeploymentOut,
    DeploymentSpec,
    OptionValue,
    RevisionOut,
    RouteSpec,
    spec_json,
)
from llmops.serving.deployments.tables import Deployment, DeploymentRevision

GENERATION_FORMATS = ("hf-transformers", "compressed-tensors")
EMBEDDING_FORMATS = ("sentence-transformers",)


class DeploymentService:
    def __init__(self, db: Database, audit: AuditLog, registry: RegistryService) -> None:
        self.db = db
        self.audit = audit
        self.registry = registry

    # changes ---------------------------------------------------------------------------------------------
    def deploy(
        self,
        actor: Actor,
        name: str,
        *,
        model: str | None,
        engine: str = "torch",
        engine_options: dict[str, OptionValue] | None = None,
        description: str | None = None,
        reason: str | None = None,
        **policies: Any,
    ) -> DeploymentOut:
        """Create the deployment, or give it a new primary route (canaries and shadows stay).

        ``policies`` are ``DeploymentSpec`` fields (require_signature, trusted_keys, rate_limit, budget,
        pricing, response_cache, scopes); unset ones keep their current value.
        """
        check_name(name)
        with self.db.write() as session:
            self.db.lock(session, "deployments")
            row = self._find(session, name)
            base = self._spec(session, row) if row else None
            fields = base.model_dump() if base else {"routes": []}
            _merge(fields, policies)
            primary = self._route("primary", "primary", model, engine, engine_options, 100.0, _policy_view(fields))
            fields["routes"] = [primary] + [r for r in fields["routes"] if r["mode"] != "primary"]
            spec = self._validate(fields)
            if row is None:
                row = Deployment(
                    name=name, description=description, revision=0, last_revision=0, created_by=actor.label
                )
                session.add(row)
                session.flush()
                change = "deploy"
            else:
                change = "update"
                if description is not None:
                    row.description = description
            return self._commit(session, actor, row, spec, change, reason)

    def set_route(
        self,
        actor: Actor,
        name: str,
        *,
        mode: str,
        model: str | None,
        percent: float,
        route: str | None = None,
        engine: str | None = None,
        engine_options: dict[str, OptionValue] | None = None,
        reason: str | None = None,
    ) -> DeploymentOut:
        """Add or replace a canary or shadow route (``route`` names it; default: its mode)."""
        if mode not in ("canary", "shadow"):
            raise InvalidInput(f"mode {mode!r}: a side route is a canary or a shadow", details={"field": "mode"})
        route_name = route or mode
        with self.db.write() as session:
            self.db.lock(session, "deployments")
            row = self._get_row(session, name)
            fields = self._spec(session, row).model_dump()
            if any(r["name"] == route_name and r["mode"] == "primary" for r in fields["routes"]):
                raise Conflict(f"route {route_name!r} is the primary of {name}; name the side route differently")
            new = self._route(
                route_name,
                mode,
                model,
                engine or fields["routes"][0]["engine"],
                engine_options,
                percent,
                _policy_view(fields),
            )
            fields["routes"] = [r for r in fields["routes"] if r["name"] != route_name] + [new]
            return self._commit(session, actor, row, self._validate(fields), mode, reason)

    def remove_route(self, actor: Actor, name: str, route: str, *, reason: str | None = None) -> DeploymentOut:
        with self.db.write() as session:
            self.db.lock(session, "deployments")
            row = self._get_row(session, name)
            fields = self._spec(session, row).model_dump()
            target = next((r for r in fields["routes"] if r["name"] == route), None)
            if target is None:
                raise NotFound(f"deployment {name} has no route {route!r}")
            if target["mode"] == "primary":
                raise Conflict(f"route {route!r} is the primary of {name}: deploy another model or delete it")
            fields["routes"] = [r for r in fields["routes"] if r["name"] != route]
            return self._commit(session, actor, row, self._validate(fields), "remove-route", reason)

    def set_policies(self, actor: Actor, name: str, *, reason: str | None = None, **policies: Any) -> DeploymentOut:
        with self.db.write() as session:
            self.db.lock(session, "deployments")
            row = self._get_row(session, name)
            fields = self._spec(session, row).model_dump()
            _merge(fields, policies)
            spec = self._validate(fields)
            for r in spec.routes:  # a new signature requirement applies to the versions already routed
                self._check_version(r, spec)
            return self._commit(session, actor, row, spec, "policy", reason)

    def promote(self, actor: Actor, name: str, *, route: str = "canary", reason: str | None = None) -> DeploymentOut:
        """The canary becomes the primary and takes all traffic; the old primary leaves."""
        with self.db.write() as session:
            self.db.lock(session, "deployments")
            row = self._get_row(session, name)
            fields = self._spec(session, row).model_dump()
            target = next((r for r in fields["routes"] if r["name"] == route), None)
            if target is None or target["mode"] != "canary":
                canaries = [r["name"] for r in fields["routes"] if r["mode"] == "canary"]
                raise Conflict(
                    f"deployment {name} has no canary route {route!r} to promote"
                    + (f" (canaries: {', '.join(canaries)})" if canaries else "; add one with --canary")
                )
            promoted = {**target, "name": "primary", "mode": "primary", "percent": 100.0}
            rest = [r for r in fields["routes"] if r["mode"] != "primary" and r["name"] != route]
            fields["routes"] = [promoted, *rest]
            return self._commit(session, actor, row, self._validate(fields), "promote", reason)

    def rollback(self, actor: Actor, name: str, *, to: int | None = None, reason: str | None = None) -> DeploymentOut:
        """A new revision with the spec of ``to`` (default: the revision in force before the current one)."""
        with self.db.write() as session:
            self.db.lock(session, "deployments")
            row = self._get_row(session, name)
            current = self._revision_row(session, row, row.revision)
            target_no = to if to is not None else current.previous
            if target_no is None:
                raise Conflict(f"deployment {name} has only its first revision; there is nothing to roll back to")
            if target_no == row.revision:
                raise Conflict(f"revision {target_no} of {name} is already in force")
            target = self._revision_row(session, row, target_no)
            spec = DeploymentSpec.model_validate(target.spec)
            return self._commit(session, actor, row, spec, "rollback", reason or f"rollback to revision {target_no}")

    def delete(self, actor: Actor, name: str) -> None:
        with self.db.write() as session:
            self.db.lock(session, "deployments")
            row = self._get_row(session, name)
            revision = row.revision
            session.delete(row)
            self.audit.append(session, actor, "deployment.delete", f"deployment/{name}", {"revision": revision})

    # reads -----------------------------------------------------------------------------------------------
    def get(self, name: str) -> DeploymentOut:
        with self.db.read() as session:
            row = self._get_row(session, name)
            return self._out(session, row)

    def list_deployments(self) -> list[DeploymentOut]:
        with self.db.read() as session:
            return [self._out(session, r) for r in session.scalars(select(Deployment).order_by(Deployment.name))]

    def revisions_in_force(self) -> dict[str, int]:
        """``{deployment: revision in force}``: one cheap query, what the engine manager polls for changes."""
        with self.db.read() as session:
            return {name: int(rev) for name, rev in session.execute(select(Deployment.name, Deployment.revision))}

    def revisions(self, name: str) -> list[RevisionOut]:
        with self.db.read() as session:
            row = self._get_row(session, name)
            query = (
                select(DeploymentRevision)
                .where(DeploymentRevision.deployment_id == row.id)
                .order_by(DeploymentRevision.revision.desc())
            )
            return [self._revision_out(row, r) for r in session.scalars(query)]

    # internals -------------------------------------------------------------------------------------------
    def _route(
        self,
        name: str,
        mode: str,
        model: str | None,
        engine: str,
        engine_options: dict[str, OptionValue] | None,
        percent: float,
        policy: DeploymentSpec | None,
    ) -> dict[str, Any]:
        version = self.registry.get_version(model).ref if model else None
        try:
            route = RouteSpec(
                name=name,
                mode=mode,  # type: ignore[arg-type]
                model=model,
                version=version,
                engine=engine,  # type: ignore[arg-type]
                engine_options=dict(engine_options or {}),
                percent=percent,
            )
        except ValidationError as exc:
            raise InvalidInput(_messages(exc), details={"field": "route"}) from exc
        self._check_version(route, policy)
        return route.model_dump()

    def _check_version(self, route: RouteSpec, spec: DeploymentSpec | None) -> None:
        """The version fits the engine, and carries a trusted signature when the deployment requires one."""
        if route.version is None:
            return
        version = self.registry.get_version(route.version)
        fits = EMBEDDING_FORMATS if route.engine == "embeddings" else GENERATION_FORMATS
        if route.engine != "openai-upstream" and version.format not in fits:
            raise InvalidInput(
                f"{route.version} is a {version.format} model; the {route.engine} engine serves "
                f"{' or '.join(fits)} versions"
                + ("; use --engine embeddings" if version.format in EMBEDDING_FORMATS else ""),
                details={"field": "model"},
            )
        if spec is not None and spec.require_signature:
            self.registry.require_signature(route.version, spec.trusted_keys)

    def _validate(self, fields: dict[str, Any]) -> DeploymentSpec:
        try:
            return DeploymentSpec.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInput(_messages(exc), details={"field": "spec"}) from exc

    def _commit(
        self, session: Session, actor: Actor, row: Deployment, spec: DeploymentSpec, change: str, reason: str | None
    ) -> DeploymentOut:
        number = row.last_revision + 1
        session.add(
            DeploymentRevision(
                deployment_id=row.id,
                revision=number,
                spec=spec_json(spec),
                change=change,
                reason=reason,
                previous=row.revision or None,
                created_by=actor.label,
            )
        )
        row.last_revision = number
        row.revision = number
        row.updated_at = utcnow()
        session.flush()
        self.audit.append(
            session,
            actor,
            f"deployment.{change}",
            f"deployment/{row.name}",
            {
                "revision": number,
                "routes": {r.name: {"version": r.version, "percent": r.percent} for r in spec.routes},
                "reason": reason,
            },
        )
        return self._out(session, row)

    @staticmethod
    def _find(session: Session, name: str) -> Deployment | None:
        return session.scalar(select(Deployment).where(Deployment.name == name))

    def _get_row(self, session: Session, name: str) -> Deployment:
        row = self._find(session, name)
        if row is None:
            raise NotFound(f"deployment {name!r} does not exist; create it with `llmops deploy {name} --model REF`")
        return row

    @staticmethod
    def _revision_row(session: Session, row: Deployment, number: int) -> DeploymentRevision:
        revision = session.scalar(
            select(DeploymentRevision).where(
                DeploymentRevision.deployment_id == row.id, DeploymentRevision.revision == number
            )
        )
        if revision is None:
            raise NotFound(f"deployment {row.name} has no revision {number}")
        return revision

    def _spec(self, session: Session, row: Deployment) -> DeploymentSpec:
        return DeploymentSpec.model_validate(self._revision_row(session, row, row.revision).spec)

    def _out(self, session: Session, row: Deployment) -> DeploymentOut:
        return DeploymentOut(
            name=row.name,
            description=row.description,
            revision=row.revision,
            spec=self._spec(session, row),
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
        )

    @staticmethod
    def _revision_out(row: Deployment, revision: DeploymentRevision) -> RevisionOut:
        return RevisionOut(
            deployment=row.name,
            revision=revision.revision,
            change=revision.change,
            reason=revision.reason,
            spec=DeploymentSpec.model_validate(revision.spec),
            created_at=revision.created_at,
            created_by=revision.created_by,
            current=revision.revision == row.revision,
        )


def _merge(fields: dict[str, Any], policies: dict[str, Any]) -> None:
    """Policies over the current spec; ``monitoring`` merges field by field (``--capture-text`` alone keeps the
    retention), the others replace their whole value."""
    for key, value in policies.items():
        current = fields.get(key)
        if key == "monitoring" and isinstance(value, dict) and isinstance(current, dict):
            fields[key] = {**current, **value}
        else:
            fields[key] = value


def _policy_view(fields: dict[str, Any]) -> DeploymentSpec | None:
    """The signature requirement of a spec under construction (its routes may not validate yet)."""
    if not fields.get("require_signature"):
        return None
    return DeploymentSpec.model_construct(
        require_signature=True, trusted_keys=list(fields.get("trusted_keys") or []), routes=[]
    )


def _messages(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )
