"""Admission policies of the gateway: rate limits (requests and tokens per minute) and budgets.

Both are checked before a request reaches an engine and read shared ``Counters`` (Redis when
``LLMOPS_REDIS_URL`` is set, so every gateway replica sees one limit; in-process otherwise).

Rate limits use fixed one-minute windows per deployment and subject (the key and the user, each limited
separately): a request increments the window's request count (taken back if it is refused, so refused
requests do not eat the allowance) and is refused while the window's tokens are spent. Tokens are added
when a response finishes — prompt and completion, streamed or not — so the token limit is enforced from the
next request on, as OpenAI's and LiteLLM's are. Fixed windows allow a burst of up to twice the limit across
a window boundary; sliding windows would need a sorted set per subject, and the simpler rule is what
operators expect from "per minute".

Budgets accumulate cost in micro-units per period (UTC day, ISO week or month) for the key, the user or the
whole deployment, and refuse new requests once the amount is spent. The counters are the fast path; the
request store's cost rollups are the ledger: when a process first meets a budget whose counter is empty (a
restarted gateway with in-process counters, a flushed Redis), it seeds the counter with what the rollups say
was spent this period. Two replicas seeding the same empty key at once would both add the ledger amount —
the budget then refuses early, never late.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping

from llmops.counters.base import Counters
from llmops.errors import QuotaExceeded
from llmops.serving.deployments.schemas import Budget, RateLimit
from llmops.serving.pricing import MICROS, to_micros

WINDOW_SECONDS = 60
ADVERB = {"day": "daily", "week": "weekly", "month": "monthly"}
Clock = Callable[[], float]


class RateLimiter:
    def __init__(self, counters: Counters, *, clock: Clock = time.time) -> None:
        self.counters = counters
        self.clock = clock

    def _window(self) -> tuple[int, float]:
        now = self.clock()
        start = int(now // WINDOW_SECONDS)
        return start, (start + 1) * WINDOW_SECONDS - now

    def admit(self, deployment: str, subjects: Mapping[str, str], limit: RateLimit) -> None:
        """Count one request for every subject (``{"key": prefix, "user": name}``) or refuse it.

        Raises ``QuotaExceeded`` with ``retry_after`` (seconds to the next window) and the limit that hit.
        """
        if limit.requests_per_minute is None and limit.tokens_per_minute is None:
            return
        window, remaining = self._window()
        counted: list[str] = []
        for kind, subject in subjects.items():
            if limit.tokens_per_minute is not None:
                used = self.counters.get(_key("tok", deployment, kind, subject, window))
                if used >= limit.tokens_per_minute:
                    self._undo(counted)
                    raise _limited(
                        f"{kind} {subject!r} used {used} of {limit.tokens_per_minute} tokens per minute",
                        remaining,
                        "tokens_per_minute",
                        kind,
                    )
            if limit.requests_per_minute is not None:
                key = _key("req", deployment, kind, subject, window)
                count = self.counters.incr(key, ttl_seconds=2 * WINDOW_SECONDS)
                counted.append(key)
                if count > limit.requests_per_minute:
                    self._undo(counted)
                    raise _limited(
                        f"{kind} {subject!r} reached {limit.requests_per_minute} requests per minute",
                        remaining,
                        "requests_per_minute",
                        kind,
                    )

    def record_tokens(self, deployment: str, subjects: Mapping[str, str], limit: RateLimit, tokens: int) -> None:
        """Add a finished response's tokens (prompt + completion) to the current window."""
        if limit.tokens_per_minute is None or tokens <= 0:
            return
        window, _ = self._window()
        for kind, subject in subjects.items():
            self.counters.incr(_key("tok", deployment, kind, subject, window), tokens, ttl_seconds=2 * WINDOW_SECONDS)

    def _undo(self, keys: list[str]) -> None:
        for key in keys:
            self.counters.incr(key, -1, ttl_seconds=2 * WINDOW_SECONDS)


Ledger = Callable[[str, str, str | None, str, str], float]
"""``(deployment, per, subject, first day YYYY-MM-DD, currency) -> amount spent`` (the cost rollups)."""


class BudgetGuard:
    def __init__(self, counters: Counters, *, clock: Clock = time.time, ledger: Ledger | None = None) -> None:
        self.counters = counters
        self.clock = clock
        self.ledger = ledger
        self._seeded: set[str] = set()

    def _first_day(self, budget: Budget) -> str:
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        if budget.period == "day":
            start = now
        elif budget.period == "week":
            start = now - dt.timedelta(days=now.weekday())
        else:
            start = now.replace(day=1)
        return start.strftime("%Y-%m-%d")

    def _seed(self, key: str, deployment: str, subjects: Mapping[str, str], budget: Budget) -> None:
        """Fill an empty counter from the ledger once per process and key (see the module docstring)."""
        if self.ledger is None or key in self._seeded:
            return
        if self.counters.get(key) == 0:
            subject = None if budget.per == "deployment" else subjects.get(budget.per)
            try:
                spent = self.ledger(deployment, budget.per, subject, self._first_day(budget), budget.currency)
            except Exception:
                return  # the ledger is unavailable: try again on the next request
            if spent > 0:
                _, remaining = self._period(budget)
                self.counters.incr(key, to_micros(spent), ttl_seconds=remaining + 86400)
        self._seeded.add(key)

    def _period(self, budget: Budget) -> tuple[str, float]:
        """The period's label and the seconds until it ends (UTC)."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if budget.period == "day":
            label, end = now.strftime("%Y-%m-%d"), day + dt.timedelta(days=1)
        elif budget.period == "week":
            year, week, _ = now.isocalendar()
            label, end = f"{year}-W{week:02d}", day + dt.timedelta(days=7 - now.weekday())
        else:
            label = now.strftime("%Y-%m")
            end = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return label, (end - now).total_seconds()

    def _subject_key(self, deployment: str, subjects: Mapping[str, str], budget: Budget) -> str | None:
        if budget.per == "deployment":
            return _key("budget", deployment, "deployment", deployment, self._period(budget)[0])
        subject = subjects.get(budget.per)
        return _key("budget", deployment, budget.per, subject, self._period(budget)[0]) if subject else None

    def check(self, deployment: str, subjects: Mapping[str, str], budget: Budget | None) -> None:
        if budget is None:
            return
        key = self._subject_key(deployment, subjects, budget)
        if key is None:
            return
        self._seed(key, deployment, subjects, budget)
        spent = self.counters.get(key) / MICROS
        if spent >= budget.amount:
            _, remaining = self._period(budget)
            raise QuotaExceeded(
                f"the {ADVERB[budget.period]} budget of {budget.amount:g} {budget.currency} per {budget.per} on "
                f"{deployment} is spent ({spent:.4f} {budget.currency}); it renews at the start of the next "
                f"{budget.period} (UTC)",
                details={"code": "budget_exceeded", "retry_after": math.ceil(remaining), "spent": spent},
            )

    def charge(self, deployment: str, subjects: Mapping[str, str], budget: Budget | None, cost: float) -> None:
        if budget is None or cost <= 0:
            return
        key = self._subject_key(deployment, subjects, budget)
        if key is not None:
            _, remaining = self._period(budget)
            self.counters.incr(key, to_micros(cost), ttl_seconds=remaining + 86400)

    def spent(self, deployment: str, subjects: Mapping[str, str], budget: Budget) -> float:
        key = self._subject_key(deployment, subjects, budget)
        return self.counters.get(key) / MICROS if key else 0.0


def _key(kind: str, deployment: str, subject_kind: str, subject: str, window: int | str) -> str:
    return f"{kind}:{deployment}:{subject_kind}:{subject}:{window}"


def _limited(message: str, remaining: float, limit: str, subject: str) -> QuotaExceeded:
    return QuotaExceeded(
        f"rate limit: {message}; retry in {math.ceil(remaining)} s",
        details={
            "code": "rate_limit_exceeded",
            "retry_after": max(1, math.ceil(remaining)),
            "limit": limit,
            "subject": subject,
        },
    )
