"""Percentiles by linear interpolation between closest ranks (numpy's default), for plain Python lists.

The load generator and the monitoring summaries and alerts all report percentiles of small lists of timings;
one definition keeps their numbers comparable (and equal to ``numpy.percentile``) without building arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmops.errors import InvalidInput


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of ``values``; 0 when empty."""
    if not 0 <= p <= 100:
        raise InvalidInput(f"a percentile is between 0 and 100, not {p}")
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
