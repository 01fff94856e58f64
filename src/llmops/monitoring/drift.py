"""Drift between a reference window and a current window of prompts and completions.

Three families of checks, from cheap and explainable to expensive and sensitive:

1. **Descriptors** (:mod:`llmops.monitoring.descriptors`, plus perplexity of prompts): each numeric
   descriptor is compared with a two-sample test and with PSI; each categorical mix (script, language,
   refusal yes/no, PII yes/no) with a test and PSI over categories.
2. **Domain classifier**: TF-IDF over words and a logistic regression asked to tell the windows apart; its
   cross-validated ROC AUC is 0.5 when it cannot. It also names the words and the examples that separate
   them, which is what a person needs to see *what* changed.
3. **Embeddings** (optional, MiniLM): MMD² with an RBF kernel and a permutation p-value, and the same
   classifier AUC on the vectors. They catch a change of topic in the same words and length.

**Small and large samples.** A p-value answers "could this be chance?", and with thousands of rows the
answer is "no" for differences too small to matter. So every check switches rule when *both* windows have
at least ``large_sample_rows`` (1,000) rows: below, a test at level ``alpha`` (KS for numbers, chi-square for
categories, a permutation test for classifier AUC); above, an effect size against a fixed threshold
(Wasserstein distance in reference standard deviations, Jensen–Shannon distance, AUC > 0.55). The issue
states the rule for the reference; the current window is included because the noise of both statistics is set
by the smaller sample (with 5,000 reference rows and 50 current ones, an AUC of 0.55 is chance).

**Bad input.** A check whose windows are too small says ``status="not_enough_data"`` with the reason and the
rows it needs; it never reports a number computed from too little data, and no number in a report is NaN or
infinite. The defaults, and the false-positive rates measured with them, are in ``docs/drift.md``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops.errors import InvalidInput
from llmops.monitoring.descriptors import (
    BatchTokenizer,
    DescriptorTable,
    Tokenize,
    Vocabulary,
    describe,
    words,
)
from llmops.monitoring.embedding import Embedder
from llmops.monitoring.perplexity import PerplexityScorer

Status = Literal["ok", "not_enough_data"]
PsiLevel = Literal["none", "moderate", "major", "not_enough_data"]
_EPS = 1e-4  # floor of a bin's share in PSI, so that an empty bin costs a bounded amount


class DriftConfig(BaseModel):
    """Every default of the drift report; ``docs/drift.md`` explains each choice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=0, description="Seed of every sample, split, fold and permutation.")
    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="Level of each small-sample test (KS, chi-square, permutation)."
    )
    large_sample_rows: int = Field(
        default=1000, ge=2, description="Rows in both windows from which effect sizes decide."
    )
    min_rows: int = Field(default=30, ge=2, description="Rows each window needs for a descriptor check.")
    max_rows: int = Field(default=1500, ge=2, description="Texts per window sampled for descriptors.")
    vocabulary_share: float = Field(
        default=0.5, gt=0, lt=1, description="Share of the reference sample whose words make the reference vocabulary."
    )
    detect_language: bool = Field(default=True, description="Run py3langid on each sampled text.")
    ngram: int = Field(default=3, ge=1, description="n of the repeated n-gram share (words).")
    wasserstein_threshold: float = Field(default=0.1, gt=0, description="Drift when W1 / reference std exceeds this.")
    js_threshold: float = Field(
        default=0.1, gt=0, description="Drift when the Jensen–Shannon distance (base 2) exceeds this."
    )
    psi_bins: int = Field(default=10, ge=2, description="Quantile bins of the reference for PSI.")
    psi_min_rows: int = Field(default=100, ge=2, description="Rows each window needs for PSI.")
    psi_moderate: float = Field(default=0.1, gt=0)
    psi_major: float = Field(default=0.25, gt=0)
    classifier_min_rows: int = Field(default=50, ge=10, description="Rows each window needs for a classifier check.")
    classifier_max_rows: int = Field(default=5000, ge=10, description="Texts per window sampled for the classifier.")
    classifier_auc_threshold: float = Field(default=0.55, gt=0.5, lt=1)
    classifier_folds: int = Field(default=5, ge=2)
    classifier_permutations: int = Field(
        default=100, ge=19, description="Label permutations for the small-sample AUC test."
    )
    top_terms: int = Field(default=15, ge=0)
    top_examples: int = Field(default=5, ge=0)
    embedding_min_rows: int = Field(default=30, ge=5)
    embedding_max_rows: int = Field(default=500, ge=10, description="Texts per window embedded.")
    mmd_max_rows: int = Field(default=500, ge=10, description="Vectors per window in the MMD kernel matrix.")
    mmd_permutations: int = Field(default=200, ge=19)
    perplexity_max_texts: int = Field(default=200, ge=2, description="Prompts per window scored by the language model.")
    perplexity_min_rows: int = Field(default=20, ge=2)


class Window(BaseModel):
    """The texts of one side of the comparison: prompts and (possibly no) completions."""

    model_config = ConfigDict(frozen=True)

    prompts: Sequence[str] = ()
    completions: Sequence[str] = ()
    label: str = ""

    @field_validator("prompts", "completions", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            raise InvalidInput("a window holds lists of texts, not one string: wrap it in a list")
        texts = tuple(value)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"text {i} is {type(text).__name__}, not str: pass decoded text")
        return texts


class _Check(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Status = "ok"
    reason: str | None = None
    min_rows: int = 0
    drift: bool = False


class NumericDrift(_Check):
    """One numeric descriptor: KS test (small samples) or normalised Wasserstein distance (large), and PSI."""

    name: str
    method: Literal["ks", "wasserstein", "none"] = "none"
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    psi: float | None = None
    psi_level: PsiLevel = "not_enough_data"
    reference_rows: int = 0
    current_rows: int = 0
    reference_mean: float | None = None
    current_mean: float | None = None
    note: str | None = None
    bin_edges: list[float] = Field(default_factory=list, description="shared equal-width bins, for charts")
    reference_histogram: list[float] = Field(default_factory=list, description="share of reference rows per bin")
    current_histogram: list[float] = Field(default_factory=list, description="share of current rows per bin")


class CategoricalDrift(_Check):
    """One categorical mix: chi-square test (small samples) or Jensen–Shannon distance (large), and PSI."""

    name: str
    method: Literal["chi2", "jensen_shannon", "none"] = "none"
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    psi: float | None = None
    psi_level: PsiLevel = "not_enough_data"
    reference_rows: int = 0
    current_rows: int = 0
    reference_shares: dict[str, float] = Field(default_factory=dict)
    current_shares: dict[str, float] = Field(default_factory=dict)


class Term(BaseModel):
    model_config = ConfigDict(frozen=True)

    term: str
    weight: float


class ClassifierDrift(_Check):
    """Can a classifier tell the windows apart? Cross-validated ROC AUC and how it is judged."""

    method: Literal["auc_threshold", "permutation", "none"] = "none"
    auc: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    reference_rows: int = 0
    current_rows: int = 0
    current_terms: list[Term] = Field(default_factory=list)
    reference_terms: list[Term] = Field(default_factory=list)
    current_examples: list[str] = Field(default_factory=list)


class EmbeddingDrift(_Check):
    """MMD² (RBF kernel, median-heuristic bandwidth) with a permutation p-value, and the classifier AUC."""

    mmd2: float | None = None
    p_value: float | None = None
    bandwidth: float | None = None
    mmd_rows: int = 0
    mmd_drift: bool = False
    classifier: ClassifierDrift = Field(default_factory=ClassifierDrift)


class TextDrift(_Check):
    """All checks for one field (prompts or completions)."""

    field: Literal["prompts", "completions"]
    reference_rows: int = 0
    current_rows: int = 0
    numeric: list[NumericDrift] = Field(default_factory=list)
    categorical: list[CategoricalDrift] = Field(default_factory=list)
    classifier: ClassifierDrift = Field(default_factory=ClassifierDrift)
    embedding: EmbeddingDrift | None = None
    pii_by_type: dict[str, dict[str, int]] = Field(default_factory=dict)
    drifted: list[str] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)


class DriftReport(_Check):
    """The comparison of two windows: ``drift`` is true when any check of any field alarmed (``drifted``)."""

    reference_label: str = ""
    current_label: str = ""
    prompts: TextDrift
    completions: TextDrift
    drifted: list[str] = Field(default_factory=list)
    config: DriftConfig
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (every number finite)."""
        return self.model_dump(mode="json")


# --- statistics ------------------------------------------------------------------------------------------
def _f(value: float | np.floating[Any]) -> float:
    out = float(value)
    if not math.isfinite(out):
        raise ArithmeticError("a drift statistic came out non-finite")  # a bug, never data: inputs are filtered
    return round(out, 6)


def _psi_from_shares(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.clip(ref, _EPS, None)
    c = np.clip(cur, _EPS, None)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    """Population stability index over quantile bins of the reference (ties merge bins)."""
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    return _psi_from_shares(r, c)


def psi_level(psi: float, config: DriftConfig) -> PsiLevel:
    return "major" if psi >= config.psi_major else "moderate" if psi >= config.psi_moderate else "none"


def _large(n_ref: int, n_cur: int, config: DriftConfig) -> bool:
    return min(n_ref, n_cur) >= config.large_sample_rows


def _too_few(what: str, n_ref: int, n_cur: int, need: int) -> str | None:
    if n_ref >= need and n_cur >= need:
        return None
    return f"{what}: reference has {n_ref} rows and current {n_cur}; each needs at least {need}"


def histograms(ref: np.ndarray, cur: np.ndarray, bins: int = 12) -> tuple[list[float], list[float], list[float]]:
    """Shares of each window in equal-width bins spanning both windows' 1st to 99th percentiles (the tails go
    to the outer bins), so two distributions can be drawn on one axis."""
    both = np.concatenate([ref, cur])
    lo, hi = (float(v) for v in np.percentile(both, [1, 99]))
    if not hi > lo:
        lo, hi = float(both.min()), float(both.max())
    if not hi > lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)

    def shares(values: np.ndarray) -> list[float]:
        counts = np.histogram(np.clip(values, lo, hi), bins=edges)[0]
        return [round(float(c) / max(1, len(values)), 6) for c in counts]

    return [round(float(e), 6) for e in edges], shares(ref), shares(cur)


def compare_numeric(name: str, ref: np.ndarray, cur: np.ndarray, config: DriftConfig) -> NumericDrift:
    """KS (p < alpha) below ``large_sample_rows`` in either window, else W1/std > threshold; plus PSI."""
    from scipy import stats

    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    base: dict[str, Any] = {
        "name": name,
        "reference_rows": len(ref),
        "current_rows": len(cur),
        "min_rows": config.min_rows,
    }
    reason = _too_few(name, len(ref), len(cur), config.min_rows)
    if reason:
        return NumericDrift(status="not_enough_data", reason=reason, **base)
    note = None
    if _large(len(ref), len(cur), config):
        scale = float(np.std(ref))
        if scale <= 0:
            scale, note = 1.0, "reference is constant: distance in the descriptor's own units"
        statistic = float(stats.wasserstein_distance(ref, cur)) / scale
        method: Literal["ks", "wasserstein"] = "wasserstein"
        p_value, threshold = None, config.wasserstein_threshold
        drift = statistic > threshold
    else:
        result = stats.ks_2samp(ref, cur, method="asymp")
        statistic, p_value, threshold = float(result.statistic), _f(result.pvalue), config.alpha
        method = "ks"
        drift = p_value < config.alpha
    psi: float | None = None
    level: PsiLevel = "not_enough_data"
    if min(len(ref), len(cur)) >= config.psi_min_rows:
        psi = _f(psi_numeric(ref, cur, config.psi_bins))
        level = psi_level(psi, config)
    edges, ref_hist, cur_hist = histograms(ref, cur)
    return NumericDrift(
        bin_edges=edges,
        reference_histogram=ref_hist,
        current_histogram=cur_hist,
        method=method,
        statistic=_f(statistic),
        p_value=p_value,
        threshold=threshold,
        drift=drift,
        psi=psi,
        psi_level=level,
        reference_mean=_f(np.mean(ref)),
        current_mean=_f(np.mean(cur)),
        note=note,
        **base,
    )


def _shares(counts: Counter[str], total: int, top: int = 12) -> dict[str, float]:
    out = {k: round(v / total, 6) for k, v in counts.most_common(top)}
    rest = total - sum(v for _, v in counts.most_common(top))
    if rest > 0:
        out["(other)"] = round(rest / total, 6)
    return out


def compare_categorical(name: str, ref: Sequence[str], cur: Sequence[str], config: DriftConfig) -> CategoricalDrift:
    """Chi-square test of homogeneity (p < alpha) on small samples, Jensen–Shannon distance on large; PSI.

    For the chi-square test, categories expected fewer than 5 times are pooled, so that the test stays valid.
    """
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    base: dict[str, Any] = {
        "name": name,
        "reference_rows": len(ref),
        "current_rows": len(cur),
        "min_rows": config.min_rows,
    }
    reason = _too_few(name, len(ref), len(cur), config.min_rows)
    if reason:
        return CategoricalDrift(status="not_enough_data", reason=reason, **base)
    rc, cc = Counter(ref), Counter(cur)
    cats = sorted(set(rc) | set(cc))
    r = np.array([rc[c] for c in cats], dtype=np.float64)
    c = np.array([cc[c] for c in cats], dtype=np.float64)
    p_value: float | None = None
    if _large(len(ref), len(cur), config):
        method: Literal["chi2", "jensen_shannon"] = "jensen_shannon"
        statistic = float(jensenshannon(r / r.sum(), c / c.sum(), base=2)) if len(cats) > 1 else 0.0
        threshold = config.js_threshold
        drift = statistic > threshold
    else:
        method, threshold = "chi2", config.alpha
        expected = (r + c) * min(len(ref), len(cur)) / (len(ref) + len(cur))
        keep = expected >= 5
        table = np.stack([r[keep], c[keep]])
        if (~keep).any():
            table = np.concatenate([table, np.array([[r[~keep].sum()], [c[~keep].sum()]])], axis=1)
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            statistic, p_value = 0.0, 1.0
        else:
            result = stats.chi2_contingency(table, correction=False)
            statistic, p_value = float(result.statistic), _f(result.pvalue)
        drift = p_value < config.alpha
    psi: float | None = None
    level: PsiLevel = "not_enough_data"
    if min(len(ref), len(cur)) >= config.psi_min_rows:
        psi = _f(_psi_from_shares(r / r.sum(), c / c.sum()))
        level = psi_level(psi, config)
    return CategoricalDrift(
        method=method,
        statistic=_f(statistic),
        p_value=p_value,
        threshold=threshold,
        drift=drift,
        psi=psi,
        psi_level=level,
        reference_shares=_shares(rc, len(ref)),
        current_shares=_shares(cc, len(cur)),
        **base,
    )


# --- classifiers ------------------------------------------------------------------------------------------
_RIDGE_ALPHA = 1.0  # L2 penalty of the ridge classifier (rows are L2-normalised, TF-IDF and embeddings alike)


def auc_columns(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each column of ``scores`` against the 0/1 column of ``labels`` (Mann–Whitney, ties halved)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    n1 = labels.sum(axis=0)
    n0 = labels.shape[0] - n1
    out: np.ndarray = ((ranks * labels).sum(axis=0) - n1 * (n1 + 1) / 2) / (n0 * n1)
    return out


def _ridge_oof(x: Any, labels: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Out-of-fold scores of a ridge classifier (least squares on centred 0/1 labels) for every column of
    ``labels`` at once: the solve depends on the training rows only, so 100 permuted label columns cost one
    solve per fold. Dense inputs (embeddings) are solved in the primal with an intercept, sparse ones (TF-IDF,
    more features than rows) in the dual."""
    from scipy import linalg, sparse
    from threadpoolctl import threadpool_limits

    y = labels.astype(np.float64)
    out = np.zeros_like(y)
    with threadpool_limits(1):  # small solves: extra BLAS threads only contend, worst on a loaded machine
        for train, test in folds:
            yt = y[train] - y[train].mean(axis=0)
            if sparse.issparse(x):
                xt = x[train]
                gram = (xt @ xt.T).toarray()
                coef = linalg.solve(gram + _RIDGE_ALPHA * np.eye(len(train)), yt, assume_a="pos")
                out[test] = (x[test] @ xt.T).toarray() @ coef
            else:
                xt = np.asarray(x[train], dtype=np.float64)
                mean = xt.mean(axis=0)
                xc = xt - mean
                w = linalg.solve(xc.T @ xc + _RIDGE_ALPHA * np.eye(xc.shape[1]), xc.T @ yt, assume_a="pos")
                out[test] = (np.asarray(x[test], dtype=np.float64) - mean) @ w
    return out


def _logistic_oof(x: Any, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Out-of-fold decision scores of a logistic regression (each row scored by a model that did not see it)."""
    from sklearn.linear_model import LogisticRegression

    scores = np.zeros(len(y))
    for train, test in folds:
        model = LogisticRegression(C=1.0, max_iter=200, solver="liblinear")
        model.fit(x[train], y[train])
        scores[test] = model.decision_function(x[test])
    return scores


def _classifier_check(
    x: Any, y: np.ndarray, config: DriftConfig, rng: np.random.Generator, *, logistic: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """Cross-validated AUC and its judgement; returns the fields of a ClassifierDrift and the out-of-fold scores.

    Large samples: AUC > ``classifier_auc_threshold`` (logistic regression when ``logistic``, else ridge).
    Small samples: the ridge classifier's AUC against the AUCs of ``classifier_permutations`` label
    permutations, each cross-validated on the same folds (p-value ≤ alpha means drift).
    """
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(config.classifier_folds, shuffle=True, random_state=int(rng.integers(2**31)))
    folds = list(splitter.split(np.zeros(len(y)), y))
    n_ref, n_cur = int((y == 0).sum()), int((y == 1).sum())
    if _large(n_ref, n_cur, config):
        scores = _logistic_oof(x, y, folds) if logistic else _ridge_oof(x, y[:, None], folds)[:, 0]
        auc = float(auc_columns(y[:, None], scores[:, None])[0])
        threshold = config.classifier_auc_threshold
        return {"method": "auc_threshold", "auc": _f(auc), "threshold": threshold, "drift": auc > threshold}, scores
    labels = np.column_stack([y] + [rng.permutation(y) for _ in range(config.classifier_permutations)])
    all_scores = _ridge_oof(x, labels, folds)
    aucs = auc_columns(labels, all_scores)
    auc, null = float(aucs[0]), aucs[1:]
    p_value = (1 + int((null >= auc).sum())) / (len(null) + 1)
    return {
        "method": "permutation",
        "auc": _f(auc),
        "threshold": _f(np.quantile(null, 1 - config.alpha)),
        "p_value": _f(p_value),
        "drift": p_value <= config.alpha,
    }, all_scores[:, 0]


def _classifier_samples(
    n_ref: int, n_cur: int, config: DriftConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of each window for a classifier: at most ``classifier_max_rows``, and at most
    ``large_sample_rows`` when the permutation test will run (it solves one n×n system per fold)."""
    cap = config.classifier_max_rows
    if min(n_ref, n_cur, cap) < config.large_sample_rows:
        cap = min(cap, config.large_sample_rows)
    return _sample(n_ref, cap, rng), _sample(n_cur, cap, rng)


def _sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a uniform sample of min(n, k) of range(n)."""
    if n <= k:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def domain_classifier(
    reference: Sequence[str], current: Sequence[str], config: DriftConfig, *, seed_offset: int = 0
) -> ClassifierDrift:
    """TF-IDF (words, see :func:`llmops.monitoring.descriptors.words`) + logistic regression, cross-validated.

    Reports the AUC and its judgement, the words with the largest weights towards each window, and the current
    texts the classifier found most current-like.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng([config.seed, 1, seed_offset])
    ri, ci = _classifier_samples(len(reference), len(current), config, rng)
    base: dict[str, Any] = {"reference_rows": len(ri), "current_rows": len(ci), "min_rows": config.classifier_min_rows}
    reason = _too_few("domain classifier", len(ri), len(ci), config.classifier_min_rows)
    if reason:
        return ClassifierDrift(status="not_enough_data", reason=reason, **base)
    texts = [reference[i] for i in ri] + [current[i] for i in ci]
    y = np.concatenate([np.zeros(len(ri), dtype=np.int64), np.ones(len(ci), dtype=np.int64)])
    vectorizer = TfidfVectorizer(
        tokenizer=words, lowercase=False, token_pattern=None, min_df=2, max_features=50_000, sublinear_tf=True
    )
    try:  # the IDF uses no labels, so fitting it on both windows leaks nothing into the cross-validation
        x = vectorizer.fit_transform(texts)
    except ValueError:
        return ClassifierDrift(
            status="not_enough_data", reason="domain classifier: no word occurs twice in the two windows", **base
        )
    fields, scores = _classifier_check(x, y, config, rng, logistic=True)
    model = LogisticRegression(C=1.0, max_iter=200, solver="liblinear").fit(x, y)
    names = vectorizer.get_feature_names_out()
    coef = model.coef_[0]
    order = np.argsort(coef)
    k = config.top_terms
    current_terms = [Term(term=str(names[j]), weight=_f(coef[j])) for j in order[::-1][:k] if coef[j] > 0]
    reference_terms = [Term(term=str(names[j]), weight=_f(coef[j])) for j in order[:k] if coef[j] < 0]
    cur_scores = scores[len(ri) :]
    examples: list[str] = []
    for j in np.argsort(-cur_scores, kind="stable"):  # the most current-like texts, each text once
        text = _clip(current[ci[j]])
        if text not in examples:
            examples.append(text)
        if len(examples) >= config.top_examples:
            break
    return ClassifierDrift(
        current_terms=current_terms, reference_terms=reference_terms, current_examples=examples, **fields, **base
    )


# --- embeddings -------------------------------------------------------------------------------------------
def mmd2_permutation_test(
    x: np.ndarray, y: np.ndarray, permutations: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Unbiased MMD² of two samples under an RBF kernel whose bandwidth is the median pairwise distance of the
    pooled sample; p-value from ``permutations`` random relabellings. Returns (mmd², p-value, bandwidth)."""
    z = np.concatenate([x, y]).astype(np.float64)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    n = len(z)
    off = d2[np.triu_indices(n, k=1)]
    bandwidth = float(np.sqrt(np.median(off)))
    if bandwidth <= 0:
        bandwidth = 1.0  # more than half the pairs coincide; any scale separates the rest
    kernel = np.exp(-d2 / (2.0 * bandwidth**2))
    m = len(x)

    def mmd2(labels: np.ndarray) -> np.ndarray:  # labels: (n, p) 0/1 columns, 1 = first sample
        s = labels.astype(np.float64)
        t = 1.0 - s
        ks = kernel @ s
        kt = kernel @ t
        xx = (np.sum(s * ks, axis=0) - m) / (m * (m - 1))
        yy = (np.sum(t * kt, axis=0) - (n - m)) / ((n - m) * (n - m - 1))
        xy = np.sum(s * kt, axis=0) / (m * (n - m))
        out: np.ndarray = xx + yy - 2.0 * xy
        return out

    observed = float(mmd2(np.concatenate([np.ones(m), np.zeros(n - m)])[:, None])[0])
    perms = np.zeros((n, permutations))
    for j in range(permutations):
        perms[rng.permutation(n)[:m], j] = 1.0
    null = mmd2(perms)
    p_value = (1 + int((null >= observed).sum())) / (permutations + 1)
    return observed, p_value, bandwidth


def embedding_drift(
    reference: Sequence[str], current: Sequence[str], embedder: Embedder, config: DriftConfig, *, seed_offset: int = 0
) -> EmbeddingDrift:
    """MMD² permutation test and classifier AUC on sentence embeddings of (sampled) texts."""
    rng = np.random.default_rng([config.seed, 2, seed_offset])
    ri = _sample(len(reference), config.embedding_max_rows, rng)
    ci = _sample(len(current), config.embedding_max_rows, rng)
    reason = _too_few("embedding drift", len(ri), len(ci), config.embedding_min_rows)
    if reason:
        return EmbeddingDrift(
            status="not_enough_data",
            reason=reason,
            min_rows=config.embedding_min_rows,
            classifier=ClassifierDrift(status="not_enough_data", reason=reason, min_rows=config.embedding_min_rows),
        )
    vectors = embedder.embed([reference[i] for i in ri] + [current[i] for i in ci])
    if vectors.shape[0] != len(ri) + len(ci) or not np.all(np.isfinite(vectors)):
        raise InvalidInput("the embedder returned the wrong number of vectors or non-finite values")
    xr, xc = vectors[: len(ri)], vectors[len(ri) :]
    mr = _sample(len(xr), config.mmd_max_rows, rng)
    mc = _sample(len(xc), config.mmd_max_rows, rng)
    mmd2, p_value, bandwidth = mmd2_permutation_test(xr[mr], xc[mc], config.mmd_permutations, rng)
    y = np.concatenate([np.zeros(len(xr), dtype=np.int64), np.ones(len(xc), dtype=np.int64)])
    fields, _ = _classifier_check(vectors, y, config, rng, logistic=False)
    classifier = ClassifierDrift(
        reference_rows=len(xr), current_rows=len(xc), min_rows=config.embedding_min_rows, **fields
    )
    mmd_drift = p_value <= config.alpha
    return EmbeddingDrift(
        mmd2=_f(mmd2),
        p_value=_f(p_value),
        bandwidth=_f(bandwidth),
        mmd_rows=len(mr) + len(mc),
        mmd_drift=mmd_drift,
        classifier=classifier,
        drift=mmd_drift or classifier.drift,
        min_rows=config.embedding_min_rows,
    )


# --- the report -------------------------------------------------------------------------------------------
def _perplexity_check(
    reference: Sequence[str], current: Sequence[str], scorer: PerplexityScorer, config: DriftConfig
) -> NumericDrift:
    """Perplexity of sampled non-empty prompts, compared on the log scale (perplexity is heavy-tailed)."""
    rng = np.random.default_rng([config.seed, 3])
    ref = [t for t in reference if t.strip()]
    cur = [t for t in current if t.strip()]
    ref_s = [ref[i] for i in _sample(len(ref), config.perplexity_max_texts, rng)]
    cur_s = [cur[i] for i in _sample(len(cur), config.perplexity_max_texts, rng)]
    reason = _too_few("perplexity", len(ref_s), len(cur_s), config.perplexity_min_rows)
    if reason:
        return NumericDrift(
            name="perplexity", status="not_enough_data", reason=reason, min_rows=config.perplexity_min_rows
        )
    scores = scorer.score(ref_s + cur_s)
    logs = np.array([math.log(s) if s is not None and s > 0 else np.nan for s in scores])
    small = config.model_copy(update={"min_rows": config.perplexity_min_rows})
    result = compare_numeric("perplexity", logs[: len(ref_s)], logs[len(ref_s) :], small)
    return result.model_copy(update={"note": "compared on log(perplexity); means are of log(perplexity)"})


def _describe_field(
    field: Literal["prompts", "completions"],
    reference: Sequence[str],
    current: Sequence[str],
    config: DriftConfig,
    tokenize: Tokenize | BatchTokenizer | None,
    embedder: Embedder | None,
    perplexity: PerplexityScorer | None,
) -> TextDrift:
    offset = 0 if field == "prompts" else 1
    rng = np.random.default_rng([config.seed, 0, offset])
    reason = _too_few(field, len(reference), len(current), config.min_rows)
    if reason:
        return TextDrift(field=field, status="not_enough_data", reason=reason, min_rows=config.min_rows,
                         reference_rows=len(reference), current_rows=len(current))  # fmt: skip
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    ri = _sample(len(reference), config.max_rows, rng)
    ci = _sample(len(current), config.max_rows, rng)
    ref_texts = [reference[i] for i in ri]
    cur_texts = [current[i] for i in ci]
    # Vocabulary from part of the reference; the rest is the reference side of the OOV comparison, so that
    # both sides are measured against words they did not contribute to.
    in_vocab = rng.random(len(ref_texts)) < config.vocabulary_share
    vocabulary = Vocabulary.build(t for t, v in zip(ref_texts, in_vocab, strict=True) if v)
    kw: dict[str, Any] = {"tokenize": tokenize, "ngram": config.ngram, "language": config.detect_language}
    ref_table = describe(ref_texts, vocabulary=vocabulary, **kw)
    cur_table = describe(cur_texts, vocabulary=vocabulary, **kw)
    seconds["descriptors"] = round(time.perf_counter() - start, 3)
    numeric_names = ["length_tokens", "oov_rate", "new_token_rate", "non_letter_share"]
    if field == "completions":
        numeric_names.append("repeated_ngram_share")
    numeric: list[NumericDrift] = []
    for name in numeric_names:
        ref_values = ref_table.numeric[name]
        if name in ("oov_rate", "new_token_rate"):
            ref_values = ref_values[~in_vocab]
        numeric.append(compare_numeric(name, ref_values, cur_table.numeric[name], config))
    if perplexity is not None and field == "prompts":
        start = time.perf_counter()
        numeric.append(_perplexity_check(reference, current, perplexity, config))
        seconds["perplexity"] = round(time.perf_counter() - start, 3)
    categorical_names = ["script", "language", "pii"] + (["refusal"] if field == "completions" else [])
    categorical = [
        compare_categorical(n, ref_table.categorical[n], cur_table.categorical[n], config) for n in categorical_names
    ]
    start = time.perf_counter()
    classifier = domain_classifier(reference, current, config, seed_offset=offset)
    seconds["classifier"] = round(time.perf_counter() - start, 3)
    embedding = None
    if embedder is not None:
        start = time.perf_counter()
        embedding = embedding_drift(reference, current, embedder, config, seed_offset=offset)
        seconds["embedding"] = round(time.perf_counter() - start, 3)
    descriptor_checks: list[NumericDrift | CategoricalDrift] = [*numeric, *categorical]
    drifted = [f"{field}.{c.name}" for c in descriptor_checks if c.drift]
    drifted += [f"{field}.classifier"] if classifier.drift else []
    if embedding is not None:
        drifted += [f"{field}.embedding_mmd"] if embedding.mmd_drift else []
        drifted += [f"{field}.embedding_classifier"] if embedding.classifier.drift else []
    return TextDrift(
        field=field,
        reference_rows=len(reference),
        current_rows=len(current),
        min_rows=config.min_rows,
        numeric=numeric,
        categorical=categorical,
        classifier=classifier,
        embedding=embedding,
        pii_by_type={"reference": dict(ref_table.pii_by_type), "current": dict(cur_table.pii_by_type)},
        drifted=drifted,
        drift=bool(drifted),
        seconds=seconds,
    )


def compare_windows(
    reference: Window,
    current: Window,
    *,
    config: DriftConfig | None = None,
    tokenize: Tokenize | BatchTokenizer | None = None,
    embedder: Embedder | None = None,
    perplexity: PerplexityScorer | None = None,
) -> DriftReport:
    """Every drift check of prompts and of completions, current against reference.

    ``tokenize`` counts lengths (default: the reference model's tokenizer); ``embedder`` (e.g.
    :class:`~llmops.monitoring.embedding.MiniLMEmbedder`) adds embedding drift; ``perplexity`` (e.g.
    :class:`~llmops.monitoring.perplexity.CausalLMPerplexity`, the reference model by default) adds the
    perplexity of prompts. Without them those checks are absent from the report, not "no drift".
    The report's status is ``not_enough_data`` when the prompts cannot be compared.
    """
    config = config or DriftConfig()
    start = time.perf_counter()
    fields = {
        name: _describe_field(
            name,
            getattr(reference, name),
            getattr(current, name),
            config,
            tokenize,
            embedder,
            perplexity if name == "prompts" else None,
        )  # fmt: skip
        for name in ("prompts", "completions")
    }
    prompts, completions = fields["prompts"], fields["completions"]
    drifted = prompts.drifted + completions.drifted
    return DriftReport(
        status=prompts.status,
        reason=prompts.reason,
        min_rows=config.min_rows,
        drift=bool(drifted),
        reference_label=reference.label,
        current_label=current.label,
        prompts=prompts,
        completions=completions,
        drifted=drifted,
        config=config,
        seconds=round(time.perf_counter() - start, 3),
    )


__all__ = [
    "CategoricalDrift",
    "ClassifierDrift",
    "DescriptorTable",
    "DriftConfig",
    "DriftReport",
    "EmbeddingDrift",
    "NumericDrift",
    "Term",
    "TextDrift",
    "Window",
    "compare_categorical",
    "compare_numeric",
    "compare_windows",
    "domain_classifier",
    "embedding_drift",
    "mmd2_permutation_test",
    "psi_numeric",
]
