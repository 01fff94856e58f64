"""What a request costs under a deployment's price table.

Two ways to price, as operators do: per token (``input_per_million``, ``output_per_million``: an API
provider's price list, or an internal transfer price), or the engine's hardware cost per hour shared out
by the time the request kept the engine busy (``hourly``: self-hosted GPUs). With both, both add up.
Costs are kept in micro-units of the currency (integers) wherever they are summed, so that totals shared
through counters never drift by floating-point rounding.
"""

from __future__ import annotations

from llmops.serving.deployments.schemas import Pricing

MICROS = 1_000_000


def request_cost(pricing: Pricing, *, prompt_tokens: int, completion_tokens: int, busy_seconds: float = 0.0) -> float:
    """The cost of one request in the pricing's currency."""
    cost = (prompt_tokens * pricing.input_per_million + completion_tokens * pricing.output_per_million) / 1e6
    if pricing.hourly:
        cost += pricing.hourly * busy_seconds / 3600.0
    return cost


def to_micros(cost: float) -> int:
    return round(cost * MICROS)
