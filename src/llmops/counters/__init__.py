"""Shared counters and small cached values (rate limits, budgets, caches).

``Counters`` is the protocol; ``MemoryCounters`` is the embedded default (one process) and
``RedisCounters`` the scale-out implementation shared by every gateway replica. The platform picks one
from ``LLMOPS_REDIS_URL``.
"""
