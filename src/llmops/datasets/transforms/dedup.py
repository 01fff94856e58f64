"""Exact and near (MinHash LSH) deduplication; both keep the first row of a group, in row order.

Both are global steps (``base.GlobalStep``): ``signatures`` runs batch by batch (in parallel on Ray) and
``decide`` runs once over the signatures alone, never over the texts.

- **Exact**: the signature is a 16-byte BLAKE2b hash of the canonical text (NFKC, case-folded, every run of
  whitespace collapsed to one space, trimmed), so rows differing only in case, width or spacing are copies.
  Memory on the driver: 16 bytes per row plus a set entry.
- **MinHash** (datasketch's ``affine64`` scheme): shingles are word ``ngram``-grams (default 5) of the
  canonical text; for text whose dominant script is CJK (Han, Kana, Hangul) each CJK character is a token and
  shingles are ``cjk_ngram``-grams (default 5) of characters. Text shorter than n tokens is one shingle.
  Signatures have ``num_perm`` (128) 64-bit values from a fixed ``seed``, so they are the same on every
  machine. A row is a near duplicate when an earlier kept row, found through LSH, has an estimated Jaccard
  similarity (the share of equal signature values) ≥ ``threshold`` (0.8); it then joins that row's cluster
  (the earliest such row). Empty texts all share one signature and so are duplicates of each other.

How it is computed, for speed: on a million rows (``benchmarks/dataset_dedup.py``) the signatures take a tenth
of the time of a datasketch ``MinHash`` per row, and the LSH pass a sixth of ``MinHashLSH``'s in far less
memory, with the same band choice:

- a shingle is hashed from its tokens, not from its bytes: each distinct token of a batch is hashed once
  (the first 8 bytes of its BLAKE2b digest) and the n token hashes of a shingle are chained with a 64-bit
  mix (:func:`shingle_hash`), all shingles of the batch at once in numpy. The signature of a row is exactly
  ``datasketch.MinHash(num_perm, seed, scheme="affine64", hashfunc=int)`` updated with those hashes
  (the per-shingle SHA-1 of datasketch's default hash function was the largest cost); the permutations run
  over blocks of shingles of the whole batch with a segmented minimum per row instead of one MinHash object
  per row.
- LSH uses datasketch's choice of bands (``b`` bands of ``r`` values, from ``MinHashLSH`` with
  ``LSH_WEIGHTS``) and its rule (candidates are the kept rows with an identical band), but finds shared
  bands by sorting a 64-bit key of every band of every row in numpy (two different bands with the same key,
  a 2^-64 chance, only add a candidate, which is then checked like any other). Rows whose every band is
  unique have no candidates and are nobody's candidate, so only rows that share a band with another row go
  through the sequential keep-or-drop loop. The band tables hold only those rows.

Memory on the driver: all signatures, ``num_perm × 8`` bytes per row (1 KiB by default: 1 GiB for a million
rows), plus ``b × 8`` bytes per row for the band keys during ``decide`` and the tables of the rows that share
a band.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from llmops.datasets.kinds import DatasetKind, document_texts
from llmops.datasets.language import is_cjk
from llmops.datasets.transforms.base import Cluster, Decision
from llmops.datasets.transforms.quality import tokens

_SPACES = re.compile(r"\s+")

LSH_WEIGHTS = (0.1, 0.9)
"""Weights of false positives and false negatives when datasketch picks the LSH bands. Candidates are checked
against the signatures before a row is dropped, so a false positive costs one comparison while a false
negative is a missed duplicate: we favour recall (128 permutations, threshold 0.8: 14 bands of 9 rows; a pair
at Jaccard 0.8 is a candidate with probability 0.87, at 0.85 with 0.97)."""


def canonical_text(text: str) -> str:
    """The text dedup compares: NFKC, case-folded, whitespace collapsed and trimmed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


class ExactDedupConfig(BaseModel):
    """``dedup: {kind: exact}``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["exact"] = "exact"


class MinHashDedupConfig(BaseModel):
    """``dedup: {kind: minhash, ...}`` with the defaults of the module docstring."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["minhash"] = "minhash"
    threshold: float = Field(default=0.8, gt=0.0, le=1.0, description="Jaccard similarity that makes a duplicate")
    num_perm: int = Field(default=128, ge=16, le=1024)
    ngram: int = Field(default=5, ge=1, description="word shingle size")
    cjk_ngram: int = Field(default=5, ge=1, description="character shingle size for CJK text")
    seed: int = Field(default=1, ge=0)


def _decide_exact(rows: npt.NDArray[np.int64], signatures: pa.Array) -> Decision:
    first: dict[bytes, int] = {}
    clusters: dict[int, Cluster] = {}
    drop: list[int] = []
    for row, key in zip(rows.tolist(), signatures.to_pylist(), strict=True):
        kept = first.setdefault(key, row)
        if kept != row:
            drop.append(row)
            clusters.setdefault(kept, Cluster(kept)).removed.append((row, 1.0))
    return Decision(np.asarray(drop, dtype=np.int64), list(clusters.values()))


class ExactDedup:
    """Global step: drop rows whose canonical text equals an earlier row's."""

    name = "dedup"

    def __init__(self, config: ExactDedupConfig) -> None:
        self.config = config

    def signatures(self, table: pa.Table, kind: DatasetKind) -> pa.Array:
        keys = [
            hashlib.blake2b(canonical_text(t).encode(), digest_size=16).digest() for t in document_texts(table, kind)
        ]
        return pa.array(keys, type=pa.binary(16))

    def decide(self, rows: npt.NDArray[np.int64], signatures: pa.Array) -> Decision:
        return _decide_exact(rows, signatures)


def canonical_tokens(text: str) -> tuple[list[str], bool]:
    """The tokens of ``canonical_text(text)`` and whether its dominant script is CJK."""
    if text.isascii():  # NFKC leaves ASCII as it is, case folding is lower(), and no token is CJK
        return text.lower().split(), False
    canonical = canonical_text(text)
    return tokens(canonical), is_cjk(canonical)


def shingles(text: str, ngram: int = 5, cjk_ngram: int = 5) -> set[bytes]:
    """The shingles MinHash sees for ``text`` (see the module docstring), as bytes: the reference definition;
    signatures hash the same token tuples with :func:`shingle_hash`."""
    toks, cjk = canonical_tokens(text)
    n, sep = (cjk_ngram, "") if cjk else (ngram, " ")
    if len(toks) <= n:
        return {sep.join(toks).encode()} if toks else set()
    return {sep.join(toks[i : i + n]).encode() for i in range(len(toks) - n + 1)}


def _fmix64(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's 64-bit finalizer (the pre-mix datasketch's affine schemes apply), element-wise."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


_CHAIN = np.uint64(0x9E3779B97F4A7C15)
_MASK64 = (1 << 64) - 1
SHINGLE_CHUNK = 8192
"""Shingles per block of the permutation step: ``num_perm × SHINGLE_CHUNK × 8`` bytes (8 MiB) of scratch."""


def token_hash(token: str) -> int:
    """64-bit hash of one token: the first 8 bytes of its BLAKE2b digest, little-endian."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    return h ^ (h >> 33)


def shingle_hash(tokens: Sequence[str]) -> int:
    """64-bit hash of one shingle (a tuple of tokens): ``h = t0``, then ``h = fmix64(h × φ + t_i)`` for each
    further token, ``t`` being :func:`token_hash` and φ 0x9E3779B97F4A7C15. The scalar reference of the
    vectorised hashing in :meth:`MinHashDedup.signatures`."""
    h = token_hash(tokens[0])
    for token in tokens[1:]:
        h = _fmix64_int((h * int(_CHAIN) + token_hash(token)) & _MASK64)
    return h


def shingle_hashes(text: str, ngram: int = 5, cjk_ngram: int = 5) -> set[int]:
    """The hashes of the shingles of ``text`` (:func:`shingles`, hashed with :func:`shingle_hash`)."""
    toks, cjk = canonical_tokens(text)
    n = cjk_ngram if cjk else ngram
    if len(toks) <= n:
        return {shingle_hash(toks)} if toks else set()
    return {shingle_hash(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def _windows(
    rows: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For rows with ``counts`` items each: every item's row and its index within the row."""
    owner = np.repeat(rows, counts)
    within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, within


class MinHashDedup:
    """Global step: drop rows that are near duplicates (MinHash LSH) of an earlier kept row."""

    name = "dedup"

    def __init__(self, config: MinHashDedupConfig) -> None:
        from datasketch import MinHash, MinHashLSH

        self.config = config
        self._permutations = MinHash(num_perm=config.num_perm, seed=config.seed, scheme="affine64").permutations
        lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, weights=LSH_WEIGHTS)
        self.bands, self.band_width = int(lsh.b), int(lsh.r)

    def signature(self, text: str) -> npt.NDArray[np.uint64]:
        """The signature of one text (one row of :meth:`signature_matrix`)."""
        row: npt.NDArray[np.uint64] = self.signature_matrix([text])[0]
        return row

    def signature_matrix(self, texts: Sequence[str]) -> npt.NDArray[np.uint64]:
        """(rows, num_perm) MinHash values: for each text, datasketch's ``affine64`` MinHash (``seed``) of its
        :func:`shingle_hashes`, computed for the whole batch at once (see the module docstring)."""
        config = self.config
        num_rows = len(texts)
        out = np.full((num_rows, config.num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
        every: list[str] = []
        lengths: list[int] = []
        sizes: list[int] = []
        for text in texts:
            toks, cjk = canonical_tokens(text)
            every += toks
            lengths.append(len(toks))
            sizes.append(config.cjk_ngram if cjk else config.ngram)
        if not every:
            return out
        # Each distinct token is hashed once per batch (Arrow's dictionary encoding finds them).
        encoded = pc.dictionary_encode(pa.array(every, type=pa.large_string()))
        del every
        vocab = encoded.dictionary.to_pylist()
        digests = b"".join(hashlib.blake2b(token.encode(), digest_size=8).digest() for token in vocab)
        flat = np.frombuffer(digests, dtype="<u8").astype(np.uint64)[encoded.indices.to_numpy()]
        length = np.asarray(lengths, dtype=np.int64)
        size = np.asarray(sizes, dtype=np.int64)
        start = np.zeros(num_rows, dtype=np.int64)
        np.cumsum(length[:-1], out=start[1:])
        # A row of k tokens has k - n + 1 shingles of n tokens, or one shingle of all k when k <= n.
        width = np.minimum(length, size)
        counts = np.where(length > size, length - size + 1, (length > 0).astype(np.int64))
        offset = np.cumsum(counts) - counts
        hashes = np.empty(int(counts.sum()), dtype=np.uint64)
        chain = flat  # chain[p]: hash of the m tokens from position p (m = 1, 2, ...)
        for m in range(1, int(width.max()) + 1):
            if m > 1:
                chain = _fmix64(chain[:-1] * _CHAIN + flat[m - 1 :])
            rows = np.flatnonzero(width == m)
            if rows.size:
                owner, within = _windows(rows, counts[rows])
                hashes[offset[owner] + within] = chain[start[owner] + within]
        self._min_hash(_fmix64(hashes), counts, offset, out)
        return out

    def _min_hash(
        self,
        premixed: npt.NDArray[np.uint64],
        counts: npt.NDArray[np.int64],
        offset: npt.NDArray[np.int64],
        out: npt.NDArray[np.uint64],
    ) -> None:
        """``out[row] = min over the row's shingles of a × h + b`` (mod 2^64), in blocks of ``SHINGLE_CHUNK``."""
        a, b = self._permutations
        rows = np.flatnonzero(counts)
        starts = offset[rows]
        total = len(premixed)
        # Permutations along the first axis: each row's shingles are then contiguous for the min-reduction.
        buffer = np.empty((len(a), min(SHINGLE_CHUNK, total)), dtype=np.uint64)
        a, b = a[:, None], b[:, None]
        for s0 in range(0, total, SHINGLE_CHUNK):
            s1 = min(s0 + SHINGLE_CHUNK, total)
            block = buffer[:, : s1 - s0]
            np.multiply(a, premixed[None, s0:s1], out=block)
            np.add(block, b, out=block)
            lo = int(np.searchsorted(starts, s0, side="right")) - 1
            hi = int(np.searchsorted(starts, s1, side="left"))
            inside = rows[lo:hi]
            reduced = np.minimum.reduceat(block, np.maximum(starts[lo:hi] - s0, 0), axis=1)
            out[inside] = np.minimum(out[inside], reduced.T)

    def signatures(self, table: pa.Table, kind: DatasetKind) -> pa.Array:
        width = self.config.num_perm * 8
        matrix = self.signature_matrix(document_texts(table, kind)).astype("<u8", copy=False)
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), len(matrix), [None, pa.py_buffer(np.ascontiguousarray(matrix).tobytes())]
        )

    def _band_groups(self, sigs: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The rows that share at least one LSH band with another row, and for each of them one key per band
        (-1 where its band is unique): key = band × rows + the band value's group."""
        n = len(sigs)
        shared = np.zeros(n, dtype=np.bool_)
        groups: list[npt.NDArray[np.int64]] = []
        for band in range(self.bands):
            columns = sigs[:, band * self.band_width : (band + 1) * self.band_width]
            key = columns[:, 0].copy()
            for j in range(1, self.band_width):
                key = _fmix64(key * _CHAIN + columns[:, j])
            _, inverse, sizes = np.unique(key, return_inverse=True, return_counts=True)
            group = np.where(sizes[inverse] > 1, inverse.astype(np.int64) + band * n, -1)
            shared |= group >= 0
            groups.append(group)
        rows = np.flatnonzero(shared)
        return rows, np.stack([g[rows] for g in groups], axis=1)

    def decide(self, rows: npt.NDArray[np.int64], signatures: pa.Array) -> Decision:
        config = self.config
        n = len(rows)
        if n == 0:
            return Decision(np.zeros(0, dtype=np.int64), [])
        buffer = signatures.buffers()[1]
        offset = signatures.offset * config.num_perm * 8
        sigs = np.frombuffer(buffer, dtype="<u8", count=n * config.num_perm, offset=offset).reshape(n, config.num_perm)
        # LSH: a row's candidates are the earlier kept rows with an identical band. Rows whose every band is
        # unique have none and are no one's candidate, so only rows sharing a band go through the loop.
        positions, keys = self._band_groups(sigs)
        tables: dict[int, list[int]] = {}
        clusters: dict[int, Cluster] = {}
        drop: list[int] = []
        row_list = rows.tolist()
        for pos, row_keys in zip(positions.tolist(), keys.tolist(), strict=True):
            row_keys = [k for k in row_keys if k >= 0]
            candidates: set[int] = set()
            for k in row_keys:
                kept = tables.get(k)
                if kept:
                    candidates.update(kept)
            match: tuple[int, float] | None = None
            if candidates:
                ordered = sorted(candidates)
                jaccards = np.mean(sigs[ordered] == sigs[pos], axis=1)
                hits = np.flatnonzero(jaccards >= config.threshold)
                if hits.size:
                    match = (ordered[int(hits[0])], float(jaccards[hits[0]]))
            if match is None:
                for k in row_keys:
                    tables.setdefault(k, []).append(pos)
                continue
            kept_row = row_list[match[0]]
            drop.append(row_list[pos])
            clusters.setdefault(kept_row, Cluster(kept_row)).removed.append((row_list[pos], round(match[1], 4)))
        return Decision(np.asarray(drop, dtype=np.int64), list(clusters.values()))


DedupConfig = ExactDedupConfig | MinHashDedupConfig


def build_dedup(config: DedupConfig) -> ExactDedup | MinHashDedup:
    return ExactDedup(config) if isinstance(config, ExactDedupConfig) else MinHashDedup(config)
