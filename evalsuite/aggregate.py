"""Prompt-sensitivity aggregation (pure functions; formulas in shared/DESIGN.md).

- normalized score per (task, prompt): 100·max(0, (s − b)/(100 − b)) for bounded
  higher-is-better metrics on 0–100 (correlations: b = 0); lower-is-better metrics raw;
- per task across prompts: max (HPLT 3.0's headline), median, mean, min, range, MAD,
  best prompt; prompt-sensitive when MAD > 5 or range > 15 points;
- CIs by bootstrap over examples (clusters where the task has them), resampled
  *jointly* across prompts so the max over prompts carries its own upward bias; the
  baseline shown beside a max is the expected max of chance-level scores under the same
  resampling;
- suite score: mean of task scores within a category, then mean of categories; across
  models: average rank and Borda count; paired bootstrap between two models.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Headline = Literal["max", "median", "mean"]
SENSITIVE_MAD = 5.0
SENSITIVE_RANGE = 15.0


def normalize(score: float | None, baseline: float | None, higher_is_better: bool = True,
              correlation: bool = False) -> float | None:
    """Rescale a 0–100 score so the random baseline maps to 0 and a perfect score to 100."""
    if score is None:
        return None
    if not higher_is_better:
        return score  # perplexity, bits per byte: shown raw
    b = 0.0 if correlation or baseline is None else baseline
    if b >= 100.0:
        return 0.0
    return 100.0 * max(0.0, (score - b) / (100.0 - b))


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median."""
    if not values:
        return 0.0
    m = statistics.median(values)
    return statistics.median(abs(v - m) for v in values)


@dataclass(frozen=True)
class Spread:
    """A task's normalized scores across prompt variants."""

    max: float
    median: float
    mean: float
    min: float
    range: float
    mad: float
    best_prompt: str
    n_prompts: int

    @property
    def sensitive(self) -> bool:
        return self.mad > SENSITIVE_MAD or self.range > SENSITIVE_RANGE

    def headline(self, how: Headline) -> float:
        match how:
            case "max":
                return self.max
            case "median":
                return self.median
            case "mean":
                return self.mean


def spread(by_prompt: dict[str, float]) -> Spread:
    """Summary of per-prompt normalized scores (ties for best go to the first id alphabetically)."""
    if not by_prompt:
        raise ValueError("no prompt scores")
    vals = list(by_prompt.values())
    best = max(sorted(by_prompt), key=lambda p: by_prompt[p])
    return Spread(max(vals), statistics.median(vals), statistics.fmean(vals), min(vals), max(vals) - min(vals), mad(vals),
                  best, len(vals))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def _cluster_index(clusters: Sequence[str]) -> tuple[np.ndarray, int]:
    keys: dict[str, int] = {}
    idx = np.array([keys.setdefault(c, len(keys)) for c in clusters], dtype=np.int64)
    return idx, len(keys)


def bootstrap_task(per_example: dict[str, np.ndarray], baselines_per_example: dict[str, np.ndarray],
                   clusters: Sequence[str], how: Headline = "max", n: int = 1000, seed: int = 0,
                   alpha: float = 0.05) -> tuple[Interval, float]:
    """Joint bootstrap over examples (by cluster) of a task's headline across prompts.

    ``per_example[prompt]``: per-example scores on 0–100 (e.g. 0/100 correctness), aligned
    with ``clusters``; ``baselines_per_example[prompt]``: each example's chance score
    (e.g. 100/n_choices). Returns the CI of the *normalized* headline and the expected
    headline of a chance-level model under the same resampling.
    """
    prompts = sorted(per_example)
    n_ex = len(clusters)
    if n_ex == 0 or not prompts:
        return Interval(0.0, 0.0), 0.0
    cidx, n_clusters = _cluster_index(clusters)
    rng = np.random.default_rng(seed)
    scores = np.stack([per_example[p] for p in prompts])  # P × N
    bases = np.stack([baselines_per_example[p] for p in prompts])
    # per-cluster sums, so a resample of clusters is a weighted sum
    sums = np.zeros((len(prompts), n_clusters))
    bsum = np.zeros((len(prompts), n_clusters))
    counts = np.bincount(cidx, minlength=n_clusters).astype(float)
    for k in range(len(prompts)):
        sums[k] = np.bincount(cidx, weights=scores[k], minlength=n_clusters)
        bsum[k] = np.bincount(cidx, weights=bases[k], minlength=n_clusters)
    heads = np.empty(n)
    chance = np.empty(n)
    for i in range(n):
        w = np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters).astype(float)
        total = float(w @ counts)
        raw = (sums @ w) / total
        b = (bsum @ w) / total
        norm = np.where(b < 100, 100 * np.maximum(0, (raw - b) / np.maximum(1e-12, 100 - b)), 0.0)
        heads[i] = _head(norm, how)
        # chance-level model: each example correct with its chance probability, independently per prompt
        p = np.clip(bases / 100.0, 0, 1)
        sim = (rng.random(p.shape) < p) * 100.0
        sim_c = np.stack([np.bincount(cidx, weights=sim[k], minlength=n_clusters) for k in range(len(prompts))])
        chance[i] = _head((sim_c @ w) / total, how)
    lo, hi = np.quantile(heads, [alpha / 2, 1 - alpha / 2])
    return Interval(float(lo), float(hi)), float(chance.mean())


def _head(v: np.ndarray, how: Headline) -> float:
    match how:
        case "max":
            return float(v.max())
        case "median":
            return float(np.median(v))
        case "mean":
            return float(v.mean())


def bootstrap_mean(values: Sequence[float], clusters: Sequence[str] | None = None, n: int = 1000, seed: int = 0,
                   alpha: float = 0.05) -> Interval:
    """Percentile CI of a mean, resampling clusters (or examples)."""
    vals = np.asarray(values, dtype=float)
    if len(vals) == 0:
        return Interval(math.nan, math.nan)
    cidx, k = _cluster_index(list(clusters) if clusters is not None else [str(i) for i in range(len(vals))])
    sums = np.bincount(cidx, weights=vals, minlength=k)
    counts = np.bincount(cidx, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n)]).astype(float)
    means = (w @ sums) / (w @ counts)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(lo), float(hi))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], clusters: Sequence[str] | None = None, n: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """Mean difference a − b on the same examples and a two-sided bootstrap p-value."""
    x = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(x) == 0:
        return 0.0, 1.0
    cidx, k = _cluster_index(list(clusters) if clusters is not None else [str(i) for i in range(len(x))])
    sums = np.bincount(cidx, weights=x, minlength=k)
    counts = np.bincount(cidx, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n)]).astype(float)
    diffs = (w @ sums) / (w @ counts)
    obs = float(x.mean())
    # share of resampled differences on the other side of zero, two-sided
    p = 2 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean()))
    return obs, min(1.0, p)


def suite_score(task_scores: dict[str, float | None], categories: dict[str, str]) -> float | None:
    """Mean of task scores within each category, then mean of categories (missing tasks skipped)."""
    by_cat: dict[str, list[float]] = {}
    for task, v in task_scores.items():
        if v is not None:
            by_cat.setdefault(categories.get(task, "other"), []).append(v)
    if not by_cat:
        return None
    return statistics.fmean(statistics.fmean(v) for v in by_cat.values())


def ranks(scores: dict[str, float | None]) -> dict[str, float]:
    """Rank 1 = best; ties share the average rank; missing scores rank last."""
    items = sorted(scores, key=lambda m: (scores[m] is None, -(scores[m] or 0.0)))
    out: dict[str, float] = {}
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and scores[items[j + 1]] == scores[items[i]]:
            j += 1
        for k in range(i, j + 1):
            out[items[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def average_rank(table: dict[str, dict[str, float | None]]) -> dict[str, float]:
    """``table[task][model]`` → mean rank of each model over tasks."""
    per_model: dict[str, list[float]] = {}
    for task_scores in table.values():
        for m, r in ranks(task_scores).items():
            per_model.setdefault(m, []).append(r)
    return {m: statistics.fmean(r) for m, r in per_model.items()}


def borda(table: dict[str, dict[str, float | None]]) -> dict[str, float]:
    """Borda count: per task, a model scores the number of models it beats (ties count half)."""
    out: dict[str, float] = {}
    for task_scores in table.values():
        models = list(task_scores)
        for m in models:
            out.setdefault(m, 0.0)
            sm = task_scores[m]
            for o in models:
                if o == m:
                    continue
                so = task_scores[o]
                if sm is None:
                    continue
                if so is None or sm > so:
                    out[m] += 1
                elif sm == so:
                    out[m] += 0.5
    return out
