"""What the dataset pages show, shaped from stored JSON for the templates.

Statistics and transform reports are JSON written by other code (and by older versions of it), so these
functions read them defensively: a field of an unexpected shape is left out of the page, never a 500.
They are pure functions of their arguments, which keeps ``ui/routes.py`` to routing and rendering.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from llmops.datasets.schemas import DatasetVersionOut
from llmops.ui import histogram

DELTA_KEYS = ("min", "mean", "p50", "p90", "p99", "max")
SHARES_SHOWN = 12  # languages or scripts listed by name; the rest are summed as "other"


def compare_default(detail: DatasetVersionOut, siblings: list[DatasetVersionOut]) -> str:
    """What a version is naturally compared with: its first parent, else the version before it."""
    if detail.parents:
        return detail.parents[0]
    return next((s.ref for s in siblings if s.version < detail.version), "")


def as_yaml(value: Any) -> str:
    """A recipe as the YAML file that would make it (keys in their recorded order)."""
    return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100))


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def as_count(value: Any) -> int:
    number = as_number(value)
    return int(number) if number is not None else 0


def shares_view(value: Any) -> list[dict[str, Any]]:
    """Language or script shares, largest first, the tail beyond ``SHARES_SHOWN`` summed as "other"."""
    if not isinstance(value, dict):
        return []
    shares = sorted(
        ((str(k), float(v)) for k, v in value.items() if as_number(v) is not None and v > 0), key=lambda kv: -kv[1]
    )
    shown, rest = shares[:SHARES_SHOWN], shares[SHARES_SHOWN:]
    if rest:
        shown.append((f"other ({len(rest)})", sum(v for _, v in rest)))
    return [{"name": k, "share": v, "percent": min(v, 1.0) * 100} for k, v in shown]


SUMMARY_KEYS = ("count", "min", "mean", "p50", "p90", "p99", "max")


def summary_view(value: dict[str, Any]) -> dict[str, float | None]:
    return {key: as_number(value.get(key)) for key in (*SUMMARY_KEYS, "empty")}


def stats_view(stats: dict[str, Any]) -> dict[str, Any]:
    """What the version page draws from the stored statistics (see ``datasets/stats.py``)."""
    lengths = [
        {"column": str(column), "summary": summary_view(s), "chart": histogram.build(s.get("histogram"))}
        for column, s in (stats.get("lengths") or {}).items()
        if isinstance(s, dict)
    ]
    turns = stats.get("turns")
    roles = stats.get("roles")
    return {
        "text_chars": as_number(stats.get("text_chars")),
        "text_bytes": as_number(stats.get("text_bytes")),
        "lengths": lengths,
        "turns": (
            {"summary": summary_view(turns), "chart": histogram.build(turns.get("histogram"), unit="turns")}
            if isinstance(turns, dict)
            else None
        ),
        "roles": {str(k): as_count(v) for k, v in roles.items()} if isinstance(roles, dict) else {},
        "languages": shares_view(stats.get("languages")),
        "scripts": shares_view(stats.get("scripts")),
        "sample_rows": as_number(stats.get("language_sample_rows")),
    }


CLIP_CHARS = 280  # sample texts longer than this are cut, with the whole text one click away


def text_cell(value: str) -> dict[str, Any]:
    return {"text": value, "head": value[:CLIP_CHARS], "clipped": len(value) > CLIP_CHARS, "chars": len(value)}


def cell_view(value: Any, *, chat: bool) -> dict[str, Any]:
    """One value of a sample row: chat turns, a (clipped) text, a JSON value or null."""
    if chat and isinstance(value, list) and all(isinstance(m, dict) for m in value):
        turns = [{"role": str(m.get("role") or "—"), **text_cell(str(m.get("content") or ""))} for m in value]
        return {"type": "chat", "turns": turns}
    if value is None:
        return {"type": "null"}
    if isinstance(value, str):
        return {"type": "text", **text_cell(value)}
    return {"type": "json", **text_cell(json.dumps(value, ensure_ascii=False))}


def rows_view(columns: list[str], rows: list[dict[str, Any]], *, chat: bool, first: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "number": first + i,
            "cells": [
                cell_view(row[c], chat=chat and c == "messages") if c in row else {"type": "missing"} for c in columns
            ],
        }
        for i, row in enumerate(rows)
    ]


def example_columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


COUNT_TITLES = {
    "filter": "Removed, by criterion",
    "pii": "PII found, by type",
    "dedup": "Duplicate clusters",
    "split": "Rows per split",
}


def example_view(raw: dict[str, Any]) -> dict[str, Any]:
    """A report example, by the shape its step writes (``datasets/transforms``); unknown shapes as JSON."""
    row = as_number(raw.get("row"))
    if "before" in raw and "after" in raw:
        return {"shape": "edit", "row": row, "before": str(raw["before"]), "after": str(raw["after"])}
    if isinstance(raw.get("kept"), dict) and isinstance(raw.get("removed"), list):
        removed = [
            {"row": as_number(r.get("row")), "jaccard": as_number(r.get("jaccard")), "text": str(r.get("text", ""))}
            for r in raw["removed"]
            if isinstance(r, dict)
        ]
        total = max(as_count(raw.get("removed_total")), len(removed))
        kept = raw["kept"]
        return {
            "shape": "cluster",
            "kept_row": as_number(kept.get("row")),
            "kept_text": str(kept.get("text", "")),
            "removed": removed,
            "more": total - len(removed),
        }
    if "redacted" in raw:
        types = raw.get("types") if isinstance(raw.get("types"), dict) else {}
        return {"shape": "redacted", "row": row, "text": str(raw["redacted"]), "types": types}
    if "reason" in raw:
        reason, detail, text = str(raw["reason"]), str(raw.get("detail", "")), str(raw.get("text", ""))
        return {"shape": "removed", "row": row, "reason": reason, "detail": detail, "text": text}
    return {"shape": "other", "json": json.dumps(raw, ensure_ascii=False, sort_keys=True)}


def report_view(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """A transform report (``datasets/pipeline.py``: rows in and out, then one entry per step) for the page."""
    if not isinstance(report, dict) or not isinstance(report.get("steps"), list):
        return None
    steps = []
    for index, raw in enumerate(report["steps"]):
        if not isinstance(raw, dict):
            continue
        rows_in, rows_out = as_count(raw.get("rows_in")), as_count(raw.get("rows_out"))
        name = str(raw.get("step", "step"))
        counts: dict[str, Any] = raw["counts"] if isinstance(raw.get("counts"), dict) else {}
        examples: list[Any] = raw["examples"] if isinstance(raw.get("examples"), list) else []
        steps.append(
            {
                "step": name,
                "position": as_count(raw.get("position", index)),
                "rows_in": rows_in,
                "rows_out": rows_out,
                "removed": as_count(raw.get("removed")),
                "changed": as_count(raw.get("changed")),
                "kept_percent": rows_out / rows_in * 100 if rows_in else 0.0,
                "counts_title": COUNT_TITLES.get(name, "Counts"),
                "counts": sorted(((str(k), as_count(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0])),
                "examples": [example_view(e) for e in examples if isinstance(e, dict)],
            }
        )
    return {"rows_in": as_count(report.get("rows_in")), "rows_out": as_count(report.get("rows_out")), "steps": steps}


def stats_delta(delta: dict[str, Any]) -> dict[str, Any]:
    """The diff's statistics deltas as rows: sizes, length summaries per column, language and script shares."""
    sizes = [(key, as_number(delta.get(key))) for key in ("rows", "bytes", "text_chars", "text_bytes")]
    lengths = [
        {
            "column": str(column),
            "deltas": [(k, d[k]) for k in DELTA_KEYS if as_number(d.get(k)) is not None],
        }
        for column, d in (delta.get("lengths") or {}).items()
        if isinstance(d, dict)
    ]

    def share_deltas(value: Any) -> list[tuple[str, float]]:
        if not isinstance(value, dict):
            return []
        found = [(str(k), float(v)) for k, v in value.items() if as_number(v) is not None and v != 0]
        return sorted(found, key=lambda kv: -abs(kv[1]))

    return {
        "sizes": [(k, v) for k, v in sizes if v is not None],
        "lengths": lengths,
        "languages": share_deltas(delta.get("languages")),
        "scripts": share_deltas(delta.get("scripts")),
    }
