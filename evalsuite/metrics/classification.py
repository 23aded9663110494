"""Classification, regression and multi-label metrics (pure numpy; cross-checked with
scikit-learn and scipy in the tests). All return fractions in [0, 1] or correlations in
[-1, 1]; callers scale to 0–100."""

from __future__ import annotations

import math
from typing import Hashable, Sequence

import numpy as np


def _labels(golds: Sequence[Hashable], preds: Sequence[Hashable]) -> list[Hashable]:
    return sorted(set(golds) | set(preds), key=str)


def confusion(golds: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """k × k confusion matrix (rows gold, columns predicted) of label indices."""
    return np.bincount(np.asarray(golds) * k + np.asarray(preds), minlength=k * k).reshape(k, k).astype(float)


def f1_from_confusion(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 (0 where undefined) and which classes occur in gold or predictions."""
    tp = np.diag(c)
    fp = c.sum(0) - tp
    fn = c.sum(1) - tp
    d = 2 * tp + fp + fn
    f1 = np.where(d > 0, 2 * tp / np.maximum(d, 1e-300), 0.0)
    present = (c.sum(0) + c.sum(1)) > 0
    return f1, present


def macro_f1_from_confusion(c: np.ndarray) -> float:
    """Mean F1 over classes present in gold or predictions (scikit-learn's macro average)."""
    f1, present = f1_from_confusion(c)
    return float(f1[present].mean()) if present.any() else math.nan


def mcc_from_confusion(c: np.ndarray) -> float:
    """Matthews correlation (multi-class R_K of Gorodkin 2004); 0 when undefined."""
    t, pr, s = c.sum(1), c.sum(0), c.sum()
    den = math.sqrt(max(0.0, (s * s - pr @ pr) * (s * s - t @ t)))
    return 0.0 if den == 0 else float((np.trace(c) * s - t @ pr) / den)


def _indexed(golds: Sequence[Hashable], preds: Sequence[Hashable], labels: Sequence[Hashable] | None = None
             ) -> tuple[np.ndarray, list[Hashable]]:
    labs = list(labels) if labels is not None else _labels(golds, preds)
    extra = [x for x in _labels(golds, preds) if x not in labs]
    labs = labs + extra
    idx = {lab: i for i, lab in enumerate(labs)}
    return confusion(np.array([idx[g] for g in golds], dtype=np.int64), np.array([idx[p] for p in preds], dtype=np.int64),
                     len(labs)), labs


def per_class_f1(golds: Sequence[Hashable], preds: Sequence[Hashable], labels: Sequence[Hashable] | None = None) -> dict:
    """F1 of each label (0 when a label is neither predicted nor present)."""
    c, labs = _indexed(golds, preds, labels)
    f1, _ = f1_from_confusion(c)
    wanted = list(labels) if labels is not None else labs
    return {lab: float(f1[labs.index(lab)]) for lab in wanted}


def f1_macro(golds: Sequence[Hashable], preds: Sequence[Hashable]) -> float:
    """Unweighted mean of per-class F1 over labels present in gold or predictions (scikit-learn's default)."""
    return macro_f1_from_confusion(_indexed(golds, preds)[0]) if len(golds) else math.nan


def f1_binary(golds: Sequence[Hashable], preds: Sequence[Hashable], positive: Hashable) -> float:
    """F1 of the positive label only."""
    return per_class_f1(golds, preds, [positive])[positive]


def mcc(golds: Sequence[Hashable], preds: Sequence[Hashable]) -> float:
    """Matthews correlation (multi-class R_K of Gorodkin 2004); 0 when undefined."""
    return mcc_from_confusion(_indexed(golds, preds)[0])


def pearson(x: Sequence[float], y: Sequence[float]) -> tuple[float, str | None]:
    """Pearson r and a flag; a constant input makes r undefined: (0.0, flag)."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if len(a) < 2:
        return 0.0, "fewer than 2 examples"
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 0.0, "constant predictions or targets: correlation undefined, reported as 0"
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb)), None


def _avg_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, str | None]:
    """Spearman rho (Pearson on average ranks) and a flag."""
    return pearson(_avg_ranks(np.asarray(x, float)), _avg_ranks(np.asarray(y, float)))


def jaccard_samples(golds: Sequence[frozenset], preds: Sequence[frozenset]) -> float:
    """Mean over examples of |G∩P| / |G∪P|, with 1 for two empty sets (SemEval-2018 E-c "multi-label accuracy")."""
    vals = [1.0 if not (g | p) else len(g & p) / len(g | p) for g, p in zip(golds, preds)]
    return float(np.mean(vals)) if vals else math.nan


def multilabel_f1(golds: Sequence[frozenset], preds: Sequence[frozenset], labels: Sequence[Hashable], average: str) -> float:
    """Micro or macro F1 over a label set."""
    tp = {lab: 0 for lab in labels}
    fp = dict(tp)
    fn = dict(tp)
    for g, p in zip(golds, preds):
        for lab in labels:
            tp[lab] += lab in g and lab in p
            fp[lab] += lab not in g and lab in p
            fn[lab] += lab in g and lab not in p
    if average == "micro":
        T, F, N = sum(tp.values()), sum(fp.values()), sum(fn.values())
        return 0.0 if 2 * T + F + N == 0 else 2 * T / (2 * T + F + N)
    f = [0.0 if 2 * tp[x] + fp[x] + fn[x] == 0 else 2 * tp[x] / (2 * tp[x] + fp[x] + fn[x]) for x in labels]
    return float(np.mean(f)) if f else math.nan
