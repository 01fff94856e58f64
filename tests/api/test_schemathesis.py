"""Property-based fuzzing of the platform REST API from its own OpenAPI document (schemathesis).

Why: hand-written bad-input tests only cover the cases someone thought of. Schemathesis derives
schema-valid and schema-invalid requests for every operation in ``/openapi.json`` and checks that the
server never answers 5xx, and that what it answers is what the document promises (status codes,
content types, response bodies). Routes under ``/runs/{run_id}`` are fuzzed twice: once with drawn ids
(which never exist) and once pinned to real runs, so that the handlers behind the 404 are exercised too.

It runs on the embedded stack only (SQLite + local blobs) with a bounded number of examples per
operation and mode, to keep it within a minute or two on a small machine. Operations are driven
through ``operation.as_strategy`` and Hypothesis directly: schemathesis' lazy pytest loader
(``schemathesis.pytest.from_fixture``) does not work with pytest 9 (it writes ``node._nodeid``).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llmops.api.app import create_app
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.settings import Settings

MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations a fuzzer must not aim at the caller's own credentials: revoking every key or demoting the
# fuzzing principal would turn the rest of the run into 401/403 answers and hide the handlers.
PINNED_SACRIFICES = {"name": "target-user", "prefix": "sacrificial"}


@dataclass
class Fuzz:
    platform: Platform
    app: FastAPI
    headers: dict[str, str]
    failures: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@pytest.fixture
def fuzz(tmp_path: Path) -> Iterator[Fuzz]:
    platform = Platform(Settings(home=tmp_path / "home"))
    boot = local_admin()
    platform.security.create_principal(boot, "fuzzer", role="admin")
    platform.security.create_principal(boot, PINNED_SACRIFICES["name"], role="viewer")
    key = platform.security.create_key(boot, principal="fuzzer").key
    yield Fuzz(platform, create_app(platform=platform), {"Authorization": f"Bearer {key}"})
    platform.close()


def _run_operation(fuzz: Fuzz, operation: Any, mode: GenerationMode, label: str, **fixed: Any) -> None:
    """Fuzz one operation in one mode; record the first failure under ``label`` instead of stopping."""

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: keep the time bounded
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def run(case: Any) -> None:
        response = case.call(headers=fuzz.headers)
        fuzz.calls += 1
        fuzz.statuses[response.status_code] = fuzz.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # Negative mode has nothing to break in an operation without parameters or body.
        if mode is GenerationMode.POSITIVE or _has_inputs(operation):
            fuzz.failures[label] = "no examples could be generated"
    except (Exception, BaseExceptionGroup) as exc:  # failed checks: the explanation and a curl reproduction
        fuzz.failures[label] = "".join(traceback.format_exception_only(exc))[:3000]


def _has_inputs(operation: Any) -> bool:
    return bool(operation.body or len(operation.path_parameters) or len(operation.query) or len(operation.headers))


def _pins(fuzz: Fuzz, operation: Any) -> dict[str, Any] | None:
    """Real identifiers for the path parameters of ``operation``, or None if it has none worth pinning."""
    names = {p.name for p in operation.path_parameters}
    if not names & {"run_id", "name", "prefix"}:
        return None
    pins: dict[str, Any] = {}
    boot = local_admin()
    if "run_id" in names:
        run = fuzz.platform.tracking.create_run(boot, kind="train", name=f"fuzz-{len(fuzz.failures)}")
        fuzz.platform.tracking.log_metrics(run.id, [("loss", 0.5, 0, 0)])
        pins["run_id"] = run.id
    if "name" in names:
        pins["name"] = PINNED_SACRIFICES["name"]
    if "prefix" in names:
        pins["prefix"] = fuzz.platform.security.create_key(
            boot, principal=PINNED_SACRIFICES["name"], name=PINNED_SACRIFICES["prefix"]
        ).prefix
    return {"path_parameters": pins}


def test_fuzzed_requests_never_get_a_5xx_and_match_the_document(fuzz: Fuzz) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz.app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document has an invalid operation: {result.err()}"
        operations.append(result.ok())
    assert len(operations) >= 25, "the OpenAPI document lost operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"
            _run_operation(fuzz, operation, mode, label)
            pins = _pins(fuzz, operation)
            if pins is not None:
                _run_operation(fuzz, operation, mode, f"{label} [pinned]", **pins)
    report = "\n\n".join(f"== {label}\n{text}" for label, text in sorted(fuzz.failures.items()))
    assert not fuzz.failures, f"{len(fuzz.failures)} operation(s) failed:\n\n{report}"
    # The fuzzer reached past authentication and validation into the handlers.
    assert fuzz.calls >= len(operations) * 5
    assert any(200 <= status < 300 for status in fuzz.statuses), fuzz.statuses
    assert fuzz.statuses.get(422, 0) > 0, fuzz.statuses
    assert not any(status >= 500 for status in fuzz.statuses), fuzz.statuses
    assert fuzz.platform.audit.verify().ok
    assert fuzz.platform.store.fsck().clean
