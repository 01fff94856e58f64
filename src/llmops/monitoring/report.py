"""The monitoring report of a deployment: one self-contained HTML file, and the same view in the UI.

``report_context`` turns a :class:`~llmops.monitoring.monitor.Summary` and a
:class:`~llmops.monitoring.drift.DriftReport` into what the templates show — inline SVG charts of latency,
throughput, each descriptor (reference against current), the words that most separate the windows, cost by
user and the quality signals — and ``render_report`` writes the standalone file (``llmops monitor report``);
the UI page (``/deployments/{name}/monitoring``) includes the same partial, so both always agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from llmops import __version__
from llmops.monitoring.drift import DriftReport, NumericDrift, TextDrift
from llmops.monitoring.monitor import Summary
from llmops.monitoring.svg import bar_chart, line_chart

SIGNAL_LABELS = {
    "empty": "empty answer",
    "truncated": "cut at max_tokens",
    "slow": "over the latency objective",
    "repetitive": "repetitive",
    "refusal": "refusal",
    "pii_output": "PII in the answer",
    "toxic": "toxic language",
}


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _descriptor_charts(field: TextDrift) -> list[dict[str, Any]]:
    charts = []
    for check in field.numeric:
        charts.append(
            {
                "name": check.name,
                "svg": _numeric_svg(field.field, check),
                "check": check,
            }
        )
    for mix in field.categorical:
        labels = sorted(set(mix.reference_shares) | set(mix.current_shares))
        charts.append(
            {
                "name": mix.name,
                "svg": bar_chart(
                    f"{field.field}: {mix.name} mix",
                    labels,
                    {
                        "reference": [mix.reference_shares.get(k, 0.0) for k in labels],
                        "current": [mix.current_shares.get(k, 0.0) for k in labels],
                    },
                    unit="share of texts",
                ),
                "check": mix,
            }
        )
    return charts


def _numeric_svg(field: str, check: NumericDrift) -> str:
    edges = check.bin_edges
    if edges and check.reference_histogram and check.current_histogram:
        labels = [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(len(edges) - 1)]
        return bar_chart(
            f"{field}: {check.name}",
            labels,
            {"reference": check.reference_histogram, "current": check.current_histogram},
            unit="share of texts per bin",
        )
    return bar_chart(
        f"{field}: {check.name} (mean)",
        [check.name],
        {"reference": [check.reference_mean], "current": [check.current_mean]},
    )


def report_context(summary: Summary, drift: DriftReport | None) -> dict[str, Any]:
    labels = [b.start.strftime("%H:%M") for b in summary.buckets]
    signal_names = [s for s in SIGNAL_LABELS if summary.signals.get(s) is not None]
    return {
        "summary": summary,
        "drift": drift,
        "generated_at": dt.datetime.now(dt.UTC),
        "version": __version__,
        "signal_labels": SIGNAL_LABELS,
        "latency_svg": line_chart(
            "end-to-end latency",
            labels,
            {
                "p50": [_ms(b.latency_p50) for b in summary.buckets],
                "p95": [_ms(b.latency_p95) for b in summary.buckets],
                "TTFT p50": [_ms(b.ttft_p50) for b in summary.buckets],
            },
            unit="ms",
        ),
        "throughput_svg": line_chart(
            "output tokens per second",
            labels,
            {"tokens/s": [b.output_tokens_per_second for b in summary.buckets]},
            unit="tokens / s",
        ),
        "requests_svg": bar_chart(
            "requests and errors",
            labels,
            {
                "requests": [float(b.requests) for b in summary.buckets],
                "errors": [float(b.errors) for b in summary.buckets],
            },
        ),
        "cost_svg": bar_chart(
            "cost by user",
            [u.user for u in summary.cost_by_user[:10]],
            {"cost": [u.cost for u in summary.cost_by_user[:10]]},
            unit=summary.cost_by_user[0].currency if summary.cost_by_user else "",
        ),
        "signals_svg": bar_chart(
            "quality signals",
            [SIGNAL_LABELS[s] for s in signal_names],
            {"share": [summary.signals[s] for s in signal_names]},
            unit="share of requests",
        ),
        "descriptor_charts": {
            name: _descriptor_charts(field)
            for name, field in (("prompts", drift.prompts), ("completions", drift.completions))
        }
        if drift is not None
        else {},
    }


def render_report(summary: Summary, drift: DriftReport | None) -> str:
    """The standalone HTML report (no external file, script or font)."""
    from llmops.ui.templating import build_environment

    return build_environment().get_template("monitoring_report.html").render(**report_context(summary, drift))
