"""Aggregation: the one normalization, the one across-prompt summary, chance and intervals.

- ``normalize``: ``100·(s − b)/(best − b)`` against the metric's trivial baseline *b*
  (``metrics/registry.py`` says which); unclipped — a display may clip, the numbers never do.
- per task across prompt variants: max (HPLT 3.0's headline), median, mean, min, range, MAD,
  best prompt; prompt-sensitive when MAD > 5 or range > 15 points (all on unclipped values).
- intervals from one bootstrap (``metrics/uncertainty.Resampler``, clusters resampled, seeded
  per task so every prompt of a task sees the same resamples):
  * max over prompts: a simultaneous interval ``[max_p L_p, max_p U_p]`` where each prompt's
    interval has level α/k (Bonferroni). It covers θ_max = max_p θ_p whenever every per-prompt
    interval covers its θ_p, so its coverage is ≥ 1 − α whatever the prompts' correlation; the
    joint percentile interval of the resampled max does not (the winner's curse stays in it).
    Coverage and width are measured in ``benchmarks/max_interval_coverage.py``.
  * median and mean over prompts: percentiles of the statistic over the joint resamples.
- chance on the score's own scale: the same statistic over k prompts of a chance-level
  predictor, normalized like the score: exact for accuracy with a fixed number of choices
  (binomial), else from ≥ 1,000 seeded draws per prompt taken once in scoring; reported as
  the mean and central 95% of that statistic.
- suite score: mean of task scores within a category, then mean of categories, over the
  tasks asked for; coverage says how many of them a model has.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from evalsuite.metrics.registry import MetricDef

Headline = Literal["max", "median", "mean"]
HEADLINES: tuple[Headline, ...] = ("max", "median", "mean")
SENSITIVE_MAD = 5.0
SENSITIVE_RANGE = 15.0
ALPHA = 0.05


def normalize(score: float | None, baseline: float | None, metric: MetricDef) -> float | None:
    """``100·(s − b)/(best − b)``: the trivial baseline maps to 0, the metric's best value to 100 (unclipped).

    None for a missing score or baseline, and for metrics that are not normalized (bits per byte).
    """
    if score is None or baseline is None or not metric.normalizable or not math.isfinite(score):
        return None
    span = metric.best - baseline
    if span == 0:
        return 0.0
    return 100.0 * (score - baseline) / span


def clip(v: float | None) -> float | None:
    """Display value: normalized scores below 0 show as 0 (marked '< 0' by the site), above 100 as 100."""
    return None if v is None else min(100.0, max(0.0, v))


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median."""
    if not values:
        return 0.0
    m = statistics.median(values)
    return statistics.median(abs(v - m) for v in values)


@dataclass(frozen=True)
class Spread:
    """A task's (normalized, unclipped) scores across prompt variants."""

    max: float
    median: float
    mean: float
    min: float
    range: float
    mad: float
    best_prompt: str
    """Prompt with the highest score (ties: first id alphabetically)."""
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
    """Summary of per-prompt scores, oriented so that higher is better."""
    if not by_prompt:
        raise ValueError("no prompt scores")
    vals = list(by_prompt.values())
    best = max(sorted(by_prompt), key=lambda p: by_prompt[p])
    return Spread(max(vals), statistics.median(vals), statistics.fmean(vals), min(vals), max(vals) - min(vals), mad(vals),
                  best, len(vals))


def _stat(v: np.ndarray, how: Headline, axis: int = 0) -> np.ndarray:
    match how:
        case "max":
            return v.max(axis=axis)
        case "median":
            return np.median(v, axis=axis)
        case "mean":
            return v.mean(axis=axis)


@dataclass(frozen=True)
class PromptInput:
    """What aggregation needs of one prompt variant's headline metric (from scoring)."""

    prompt_id: str
    raw: float | None
    """The metric's value on its own scale."""
    baseline: float | None
    """Trivial baseline on the metric's scale (None: not normalizable)."""
    n: int
    """Examples scored."""
    dist: np.ndarray | None = None
    """Bootstrap distribution of ``raw`` (resamples shared by every prompt of the task)."""
    chance: np.ndarray | None = None
    """Seeded draws of a chance-level predictor's raw score on the same examples."""
    chance_exact: tuple[int, float] | None = None
    """(n, p): a chance-level score is 100·Binomial(n, p)/n exactly (accuracy with p = 1/choices)."""


@dataclass(frozen=True)
class HeadlineValue:
    """One across-prompt statistic with its interval and chance, all on the normalized scale."""

    value: float
    ci_low: float | None
    ci_high: float | None
    chance: float | None
    """Expected value of the statistic for k chance-level prompts."""
    chance_low: float | None
    chance_high: float | None
    method: str
    """How the interval was made."""


@dataclass(frozen=True)
class TaskAggregate:
    """A task's headline metric across prompts, normalized, with intervals and chance per statistic."""

    metric: str
    normalized: dict[str, float]
    """Per prompt: normalized (unclipped) score; raw value for metrics that are not normalized."""
    spread: Spread | None
    headlines: dict[str, HeadlineValue] = field(default_factory=dict)
    normalizable: bool = True


def _orient(metric: MetricDef, p: PromptInput) -> tuple[float | None, np.ndarray | None, np.ndarray | None]:
    """Point, bootstrap and chance draws on the scale the headline uses (normalized, or −raw for lower-is-better)."""
    if metric.normalizable:
        if p.raw is None or p.baseline is None:
            return None, None, None
        span = metric.best - p.baseline
        f = (lambda x: 100.0 * (x - p.baseline) / span) if span else (lambda x: x * 0.0)
        return normalize(p.raw, p.baseline, metric), None if p.dist is None else f(p.dist), None if p.chance is None else f(p.chance)
    if p.raw is None:
        return None, None, None
    sign = 1.0 if metric.higher_is_better else -1.0
    return sign * p.raw, None if p.dist is None else sign * p.dist, None


def _binomial_max(n: int, prob: float, k: int, metric: MetricDef, baseline: float) -> tuple[float, float, float]:
    """Mean and central 95% of the normalized max over k independent Binomial(n, prob) accuracies (exact)."""
    from math import comb, log

    xs = np.arange(n + 1)
    logp = np.array([log(comb(n, int(x))) + (x * log(prob) if prob > 0 else (0 if x == 0 else -math.inf))
                     + ((n - x) * log(1 - prob) if prob < 1 else (0 if x == n else -math.inf)) for x in xs])
    pmf = np.exp(logp - logp.max())
    pmf /= pmf.sum()
    cdf_max = np.cumsum(pmf) ** k
    pmf_max = np.diff(np.concatenate([[0.0], cdf_max]))
    vals = np.array([normalize(100.0 * x / n, baseline, metric) for x in xs], dtype=float)
    mean = float(pmf_max @ vals)
    lo = vals[int(np.searchsorted(cdf_max, ALPHA / 2))]
    hi = vals[min(n, int(np.searchsorted(cdf_max, 1 - ALPHA / 2)))]
    return mean, float(lo), float(hi)


def aggregate_task(metric: MetricDef, prompts: Sequence[PromptInput], alpha: float = ALPHA) -> TaskAggregate:
    """Normalize each prompt's headline metric and summarize across prompts with intervals and chance."""
    oriented = {p.prompt_id: _orient(metric, p) for p in prompts}
    values = {pid: o[0] for pid, o in oriented.items() if o[0] is not None}
    if not values:
        return TaskAggregate(metric.name, {}, None, {}, metric.normalizable)
    sp = spread(values)
    pids = sorted(values)
    k = len(pids)
    point = np.array([values[p] for p in pids])
    dists = [oriented[p][1] for p in pids]
    chances = [oriented[p][2] for p in pids]
    by_id = {p.prompt_id: p for p in prompts}
    heads: dict[str, HeadlineValue] = {}
    have_dist = all(d is not None and len(d) > 1 for d in dists)
    aligned = have_dist and len({len(d) for d in dists}) == 1  # type: ignore[arg-type]
    # chance: one matrix of draws (k × R) on the normalized scale, or the exact binomial for the max
    chance_mat = None
    if metric.normalizable and all(c is not None and len(c) > 0 for c in chances):
        r = min(len(c) for c in chances)  # type: ignore[arg-type]
        chance_mat = np.stack([c[:r] for c in chances])  # type: ignore[index]
    exact = [by_id[p].chance_exact for p in pids]
    for how in HEADLINES:
        value = float(_stat(point, how))
        lo = hi = None
        method = "none (no per-example values)"
        if have_dist:
            if how == "max":
                # simultaneous per-prompt intervals at level alpha/k, so the max over prompts is covered
                q = alpha / (2 * k)
                los = [float(np.nanquantile(d, q)) for d in dists]  # type: ignore[arg-type]
                his = [float(np.nanquantile(d, 1 - q)) for d in dists]  # type: ignore[arg-type]
                lo, hi = max(los), max(his)
                method = f"simultaneous: max over prompts of per-prompt bootstrap intervals at level {alpha}/{k}"
            elif aligned:
                stat = _stat(np.stack(dists), how)  # type: ignore[arg-type]
                lo, hi = (float(x) for x in np.nanquantile(stat, [alpha / 2, 1 - alpha / 2]))
                method = f"percentile of the {how} over joint cluster resamples"
            if lo is not None and hi is not None:
                lo, hi = min(lo, value), max(hi, value)  # the interval holds its own headline
        c_mean = c_lo = c_hi = None
        if metric.normalizable:
            first = exact[0]
            if how == "max" and first is not None and all(e == first for e in exact) and by_id[pids[0]].baseline is not None:
                c_mean, c_lo, c_hi = _binomial_max(first[0], first[1], k, metric, float(by_id[pids[0]].baseline))  # type: ignore[arg-type]
            elif chance_mat is not None:
                s = _stat(chance_mat, how)
                c_mean = float(s.mean())
                c_lo, c_hi = (float(x) for x in np.quantile(s, [alpha / 2, 1 - alpha / 2]))
        if not metric.normalizable and not metric.higher_is_better:
            # stored on the metric's own scale: "max" is the best (lowest) raw value
            value, lo, hi = -value, (None if hi is None else -hi), (None if lo is None else -lo)
        heads[how] = HeadlineValue(value, lo, hi, c_mean, c_lo, c_hi, method)
    if not metric.normalizable:
        values = {p.prompt_id: float(p.raw) for p in prompts if p.raw is not None}
    return TaskAggregate(metric.name, values, sp, heads, metric.normalizable)


# ---------------------------------------------------------------- across tasks and models

def suite_score(task_scores: dict[str, float | None], categories: dict[str, str]) -> float | None:
    """Mean of task scores within each category, then mean of categories (over the tasks present)."""
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


def paired_bootstrap(a: Sequence[float], b: Sequence[float], clusters: Sequence[str] | None = None, n: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """Mean difference a − b on the same examples and a two-sided bootstrap p-value."""
    from evalsuite.metrics.uncertainty import Resampler

    x = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(x) == 0:
        return 0.0, 1.0
    rs = Resampler(list(clusters) if clusters is not None else [str(i) for i in range(len(x))], n, seed)
    diffs = rs.mean(x)
    return float(x.mean()), p_value(diffs)


def p_value(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 'no difference': twice the share of resampled differences across zero."""
    if len(diffs) == 0:
        return 1.0
    return min(1.0, 2 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
