"""Statistics of a dataset version, computed one batch at a time while the version is written.

Length distributions use a :class:`LengthSketch`: exact counts for lengths up to 4,096 and logarithmic
buckets 1 % wide above, so memory stays constant however many rows there are, percentiles of short texts
are exact and those of long ones are within 1 %. Language and script are identified on a sample (every row
of the first 10,000, then every 100th) because language identification costs far more than the rest of
an import; the sample size is recorded next to the shares.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llmops.datasets.kinds import DatasetKind, document_texts, text_columns

EXACT_MAX = 4096
GAMMA = 1.01
HISTOGRAM_BINS = 20
LANGUAGE_FULL_ROWS = 10_000
LANGUAGE_EVERY = 100
LANGUAGE_CHARS = 2000  # identification reads the start of a document; enough for a confident answer
PERCENTILES = (50, 90, 99)


class LengthSketch:
    """Distribution of non-negative integers with constant memory (see the module docstring)."""

    def __init__(self) -> None:
        self.exact = np.zeros(EXACT_MAX + 1, dtype=np.int64)
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def update(self, values: np.ndarray[Any, Any]) -> None:
        values = np.asarray(values, dtype=np.int64)
        if values.size == 0:
            return
        self.count += int(values.size)
        self.total += int(values.sum())
        lo, hi = int(values.min()), int(values.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        small = values[values <= EXACT_MAX]
        self.exact += np.bincount(small, minlength=EXACT_MAX + 1)
        large = values[values > EXACT_MAX]
        if large.size:
            idx = np.ceil(np.log(large) / math.log(GAMMA)).astype(np.int64)
            keys, counts = np.unique(idx, return_counts=True)
            for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
                self.buckets[k] += c

    def _points(self) -> list[tuple[int, int]]:
        """(value, count) in increasing value order; a log bucket is represented by its upper bound."""
        nz = np.nonzero(self.exact)[0]
        points = [(int(v), int(self.exact[v])) for v in nz]
        for key in sorted(self.buckets):
            value = min(round(GAMMA**key), self.max or 0)
            points.append((value, self.buckets[key]))
        return points

    def percentile(self, p: float) -> int | None:
        """Nearest rank: the smallest value with at least ``p`` % of the values at or below it."""
        if not self.count:
            return None
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for value, count in self._points():
            seen += count
            if seen >= rank:
                return value
        return self.max

    def histogram(self, bins: int = HISTOGRAM_BINS) -> dict[str, list[float] | list[int]]:
        """Counts in ``bins`` bins over [min, max]: linear, or logarithmic when max/min spans more than 100×."""
        if not self.count or self.min is None or self.max is None:
            return {"edges": [], "counts": []}
        lo, hi = self.min, self.max
        if hi == lo:
            return {"edges": [float(lo), float(hi + 1)], "counts": [self.count]}
        if hi / max(lo, 1) > 100:
            edges = np.geomspace(max(lo, 1), hi + 1, bins + 1)
            edges[0] = lo
        else:
            edges = np.linspace(lo, hi + 1, min(bins, hi + 1 - lo) + 1)
        counts = np.zeros(len(edges) - 1, dtype=np.int64)
        for value, count in self._points():
            i = int(np.searchsorted(edges, value, side="right")) - 1
            counts[min(max(i, 0), len(counts) - 1)] += count
        return {"edges": [round(float(e), 3) for e in edges], "counts": counts.tolist()}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count,
            "min": self.min,
            "mean": round(self.total / self.count, 4) if self.count else None,
        }
        for p in PERCENTILES:
            out[f"p{p}"] = self.percentile(p)
        out["max"] = self.max
        out["total"] = self.total
        out["histogram"] = self.histogram()
        return out


def _lengths(array: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    return np.asarray(pc.fill_null(pc.utf8_length(array), 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _utf8_bytes(array: pa.Array | pa.ChunkedArray) -> int:
    total = pc.sum(pc.binary_length(array)).as_py()
    return int(total or 0)


class StatsBuilder:
    """Accumulates the statistics of one version, batch by batch."""

    def __init__(self, kind: DatasetKind) -> None:
        self.kind = DatasetKind(kind)
        self.columns = {name: LengthSketch() for name in text_columns(self.kind)}
        self.empty: Counter[str] = Counter()
        self.turns = LengthSketch()
        self.roles: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.scripts: Counter[str] = Counter()
        self.sampled = 0
        self.text_bytes = 0
        self.seen = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self.kind is DatasetKind.chat:
            messages = batch.column("messages")
            flat = pc.list_flatten(messages)
            content = pc.struct_field(flat, "content")
            parents = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False)
            per_row = np.bincount(parents, weights=_lengths(content), minlength=batch.num_rows).astype(np.int64)
            self.columns["messages"].update(per_row)
            self.empty["messages"] += int((per_row == 0).sum())
            self.turns.update(pc.fill_null(pc.list_value_length(messages), 0).to_numpy(zero_copy_only=False))
            self.roles.update(pc.struct_field(flat, "role").to_pylist())
            self.text_bytes += _utf8_bytes(content)
        else:
            for name in text_columns(self.kind):
                lengths = _lengths(batch.column(name))
                self.columns[name].update(lengths)
                self.empty[name] += int((lengths == 0).sum())
                self.text_bytes += _utf8_bytes(batch.column(name))
        self._languages(batch)
        self.seen += batch.num_rows

    def _languages(self, batch: pa.RecordBatch | pa.Table) -> None:
        from llmops.datasets.language import detect_language, script_of

        start = self.seen
        picks = [
            i for i in range(batch.num_rows) if start + i < LANGUAGE_FULL_ROWS or (start + i) % LANGUAGE_EVERY == 0
        ]
        if not picks:
            return
        sample = batch.take(pa.array(picks, type=pa.int64()))
        for text in document_texts(sample, self.kind):
            head = text[:LANGUAGE_CHARS]
            self.languages[detect_language(head)[0]] += 1
            self.scripts[script_of(head)] += 1
            self.sampled += 1

    def result(self, *, rows: int, parquet_bytes: int) -> dict[str, Any]:
        def shares(counter: Counter[str]) -> dict[str, float]:
            total = sum(counter.values())
            return {k: round(v / total, 6) for k, v in counter.most_common()} if total else {}

        out: dict[str, Any] = {
            "rows": rows,
            "bytes": parquet_bytes,
            "text_bytes": self.text_bytes,
            "text_chars": sum(s.total for s in self.columns.values()),
            "lengths": {name: {**s.summary(), "empty": self.empty[name]} for name, s in self.columns.items()},
            "languages": shares(self.languages),
            "scripts": shares(self.scripts),
            "language_sample_rows": self.sampled,
        }
        if self.kind is DatasetKind.chat:
            out["turns"] = self.turns.summary()
            out["roles"] = dict(self.roles.most_common())
        return out
