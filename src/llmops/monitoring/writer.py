"""The database writer of the gateway's record sink: records become stored requests, off the request path.

The gateway's :class:`~llmops.serving.records.BufferedSink` hands batches to the database writer, which does
the work that must never slow a response — quality signals, PII redaction of kept texts, the insert. By
default it runs in the gateway's writer process (:mod:`llmops.monitoring.writer_process`, which calls
:meth:`DatabaseWriter.write_now`), because in the gateway's own process its CPU work contends with the event
loop for the GIL; with ``LLMOPS_REQUEST_WRITER=thread`` the sink awaits :meth:`DatabaseWriter.write`, which
runs it in a worker thread of the gateway. When the database is unavailable the insert raises, the sink counts
the batch as lost (``llmops_records_failed_total{writer="DatabaseWriter"}``, and a log line at most every ten
seconds) and serving goes on; the next batch tries again, so writing resumes by itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmops.datasets.transforms.pii import redact_text
from llmops.monitoring.quality import assess
from llmops.monitoring.store import PreparedRequest, RequestStore
from llmops.serving.records import RequestRecord

MICROS = 1_000_000
Assessor = Callable[[RequestRecord, Mapping[str, int] | None], dict[str, Any]]


def _clean(text: str | None) -> str | None:
    # The database refuses NUL characters in text; a prompt may carry them.
    return None if text is None else text.replace("\x00", "\ufffd")


def basic_signals(record: RequestRecord) -> dict[str, Any]:
    """The signals every request has, text kept or not: empty output, truncation, latency objective."""
    generated = record.endpoint != "embeddings" and record.status < 400
    objective = record.policy.latency_objective_ms if record.policy else None
    return {
        "empty": generated and record.completion_tokens == 0,
        "truncated": generated and "length" in (record.finish_reason or "").split(","),
        "slow": None if objective is None else record.latency * 1000 > objective,
    }


def assess_text(record: RequestRecord, completion_pii: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Text-based quality signals of a record that kept its texts (:func:`llmops.monitoring.quality.assess`):
    the four flags the store indexes, plus the scores and matched terms kept with the row. ``completion_pii``:
    the completion's PII counts when they are known already (its redaction found them)."""
    text = record.text
    if text is None:
        return {}
    signals = assess(text.prompt or "", text.completion or "", finish_reason=record.finish_reason, pii=completion_pii)
    return {
        "repetitive": signals.repetitive,
        "refusal": signals.refusal,
        "pii_output": signals.pii_count > 0,
        "toxic": signals.toxic,
        "repetition": signals.repetition,
        "toxicity": signals.toxicity,
        **({"pii_types": signals.pii_types} if signals.pii_types else {}),
        **({"toxic_terms": signals.toxic_terms} if signals.toxic_terms else {}),
    }


class DatabaseWriter:
    """Stores batches of records in a :class:`RequestStore` (see the module docstring).

    ``assess`` adds the text-based quality signals (repetition, refusal, PII, toxicity) for records that kept
    their texts; by default :func:`assess_text`.
    """

    def __init__(self, store: RequestStore, *, assess: Assessor | None = None) -> None:
        self.store = store
        self.assess = assess or assess_text
        self.stored = 0

    async def write(self, records: Sequence[RequestRecord]) -> None:
        await asyncio.to_thread(self.write_now, records)

    def write_now(self, records: Sequence[RequestRecord]) -> int:
        stored = self.store.write([self.prepare(r) for r in records])
        self.stored += stored
        return stored

    def prepare(self, record: RequestRecord) -> PreparedRequest:
        signals = basic_signals(record)
        extra: dict[str, Any] = {}
        text_row: dict[str, Any] | None = None
        started = dt.datetime.fromtimestamp(record.started_at, dt.UTC)
        if record.text is not None:
            policy = record.policy
            redact = policy.redact_pii if policy else True
            retention = policy.retention_days if policy else 30
            prompt, completion = _clean(record.text.prompt), _clean(record.text.completion)
            messages = (
                [{k: _clean(v) for k, v in m.items()} for m in record.text.messages] if record.text.messages else None
            )
            # the completion's redaction finds its PII: the quality signals reuse the counts (one pass, not two)
            found: Counter[str] | None = None
            if redact and completion:
                completion, found = redact_text(completion)
            extra = self.assess(record, found)
            for name in ("repetitive", "refusal", "pii_output", "toxic"):
                signals[name] = bool(extra.pop(name, False))
            counts: dict[str, int] = dict(found) if found else {}
            if redact:
                prompt, messages, more = _redact(prompt, messages)
                for kind, n in more.items():
                    counts[kind] = counts.get(kind, 0) + n
            text_row = {
                "prompt": prompt,
                "messages": messages,
                "completion": completion,
                "redactions": counts or None,
                "expires_at": started + dt.timedelta(days=retention),
            }
        row = {
            "request_id": record.request_id,
            "deployment": record.deployment,
            "endpoint": record.endpoint,
            "route": record.route,
            "version": record.version,
            "revision": record.revision,
            "mode": record.mode,
            "key_prefix": record.key_prefix,
            "user": record.user,
            "request_user": _clean(record.request_user[:256]) if record.request_user else None,
            "stream": record.stream,
            "status": record.status,
            "error": record.error,
            "finish_reason": record.finish_reason,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "queue_time": record.queue_time,
            "ttft": record.time_to_first_token,
            "tpot": record.time_per_output_token,
            "latency": record.latency,
            "cost_micros": round(record.cost * MICROS),
            "currency": record.currency,
            "cache_hit": record.cache_hit,
            "started_at": started,
            "finished_at": dt.datetime.fromtimestamp(record.finished_at, dt.UTC),
            **{k: signals.get(k) for k in ("empty", "truncated", "slow", "repetitive", "refusal", "pii_output")},
            "toxic": signals.get("toxic"),
            "signals": extra or None,
        }
        return PreparedRequest(row=row, text=text_row)


def _redact(
    prompt: str | None, messages: list[dict[str, Any]] | None
) -> tuple[str | None, list[dict[str, Any]] | None, dict[str, int]]:
    """The prompt and messages redacted, and the PII counted (a prompt that is one of the messages once)."""
    counts: dict[str, int] = {}
    redacted: dict[str, str] = {}  # text -> redacted text, for the prompt (a message's content, redacted there)

    def scrub(text: Any) -> Any:
        if not isinstance(text, str) or not text:
            return text
        clean, found = redact_text(text)
        redacted[text] = clean
        for kind, n in found.items():
            counts[kind] = counts.get(kind, 0) + n
        return clean

    if messages is not None:
        messages = [{**m, "content": scrub(m.get("content"))} for m in messages]
        if prompt:  # one of the messages: counted there, and redacted already unless the gateway changed it
            prompt = redacted[prompt] if prompt in redacted else redact_text(prompt)[0]
    else:
        prompt = scrub(prompt)
    return prompt, messages, counts
