"""The Jinja2 environment of the UI and the filters its templates use to present values.

Templates are autoescaped (every value a user or a run can influence is text, never markup) and
undefined variables are errors, so a typo in a template fails its test instead of rendering blank.
Times are shown in UTC so that two people comparing screens see the same instant.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from llmops import __version__
from llmops.ui.lineage import version_href

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def utc(value: dt.datetime | None) -> str:
    """``2024-05-01 12:34:56Z``: readable, sortable and unambiguous about the zone."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(value: dt.datetime | None) -> str:
    """Full ISO 8601 for ``<time datetime=…>`` and tooltips."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def duration(start: dt.datetime | None, end: dt.datetime | None = None) -> str:
    """``1h 02m``, ``3m 07s``, ``12.4s``; a run still going is measured up to now."""
    if start is None:
        return "—"
    seconds = ((end or dt.datetime.now(dt.UTC)) - start).total_seconds()
    if seconds < 0:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def human_bytes(value: int) -> str:
    """``1.5 GiB``: store sizes span bytes to terabytes."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def number(value: float) -> str:
    """Metric values with six significant digits: enough to tell runs apart, short enough to scan."""
    return f"{value:.6g}"


def thousands(value: int) -> str:
    """``112,448``: exact counts people can still read."""
    return f"{value:,}"


def count(value: int) -> str:
    """``112.4 K``, ``7.24 B``: parameter counts at a glance (decimal units, as model cards write them)."""
    for scale, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return str(value)


def compact_json(value: Any) -> str:
    """Audit details on one line, keys sorted so equal details look equal."""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False, default=str)


def url_path(value: str) -> str:
    """Percent-encode a value for a URL path, keeping ``/`` (artifact paths have folders)."""
    return quote(value, safe="/")


def dataset_href(ref: str) -> str:
    """``name:3`` → ``/datasets/name/3`` (a dataset version's page)."""
    name, sep, version = ref.rpartition(":")
    if not sep:
        return f"/datasets/{quote(ref, safe='')}"
    return f"/datasets/{quote(name, safe='')}/{quote(version, safe='')}"


def signed(value: float) -> str:
    """``+1,204``, ``−3``, ``+0.0123``: a difference, with its sign always shown."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):+,}".replace("-", "−")
    return f"{value:+.4g}".replace("-", "−")


def static_url(name: str) -> str:
    """A static asset URL that changes with the package version, so browsers drop stale copies."""
    return f"/static/{name}?v={__version__}"


def build_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        utc=utc,
        iso=iso,
        human_bytes=human_bytes,
        number=number,
        thousands=thousands,
        count=count,
        compact_json=compact_json,
        url_path=url_path,
        version_href=version_href,
        dataset_href=dataset_href,
        signed=signed,
    )
    env.globals.update(duration=duration, static_url=static_url, version=__version__)
    return env
