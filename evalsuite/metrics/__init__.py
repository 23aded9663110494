"""Metrics: small pure functions over per-example predictions.

Scales: classification and text metrics are reported on 0–100 (higher is
better); perplexity and bits-per-byte are raw (lower is better).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from evalsuite.metrics.normalize import normalize

LOWER_IS_BETTER = {"perplexity", "bits_per_byte"}


@dataclass(frozen=True)
class MetricValue:
    """A metric's value with what is needed to read it."""

    name: str
    value: float | None
    """None when undefined (reported with ``flag``)."""
    higher_is_better: bool
    signature: str
    """How it was computed: ``metric|norm:…|tok:…|version:…``."""
    flag: str | None = None


def mc_predictions(lls: Sequence[Sequence[float]], choices: Sequence[Sequence[str]], mode: str) -> list[int]:
    """Argmax choice per example: raw log-likelihood, or divided by characters / UTF-8 bytes."""
    preds = []
    for ll, ch in zip(lls, choices):
        if mode == "acc":
            scores = list(ll)
        elif mode == "acc_norm":
            scores = [x / max(1, len(c)) for x, c in zip(ll, ch)]
        elif mode == "acc_bytes":
            scores = [x / max(1, len(c.encode("utf-8"))) for x, c in zip(ll, ch)]
        else:  # pragma: no cover - guarded by the spec schema
            raise ValueError(mode)
        preds.append(int(np.argmax(scores)))
    return preds


def accuracy(preds: Sequence[int | str], golds: Sequence[int | str]) -> float:
    if not golds:
        return float("nan")
    return 100.0 * sum(p == g for p, g in zip(preds, golds)) / len(golds)


def f1_macro(preds: Sequence[int | str], golds: Sequence[int | str]) -> float:
    """Macro-F1 over the labels present in gold or predictions (scikit-learn's default), ×100."""
    labels = sorted(set(golds) | set(preds), key=str)
    if not labels:
        return float("nan")
    f1s = []
    for lab in labels:
        tp = sum(1 for p, g in zip(preds, golds) if p == lab and g == lab)
        fp = sum(1 for p, g in zip(preds, golds) if p == lab and g != lab)
        fn = sum(1 for p, g in zip(preds, golds) if p != lab and g == lab)
        denom = 2 * tp + fp + fn
        f1s.append(0.0 if denom == 0 else 2 * tp / denom)
    return 100.0 * float(np.mean(f1s))


def f1_macro_random_baseline(golds: Sequence[int], n_labels: int, draws: int = 1000, seed: int = 0) -> float:
    """Expected macro-F1 (×100) of uniform random predictions, by seeded Monte Carlo."""
    rng = np.random.default_rng(seed)
    g = np.asarray(golds)
    total = 0.0
    for _ in range(draws):
        p = rng.integers(0, n_labels, size=len(g))
        present = np.union1d(np.unique(g), np.unique(p))
        f1 = []
        for lab in present:
            tp = np.sum((p == lab) & (g == lab))
            fp = np.sum((p == lab) & (g != lab))
            fn = np.sum((p != lab) & (g == lab))
            f1.append(0.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
        total += float(np.mean(f1))
    return 100.0 * total / draws


def exact_match(preds: Sequence[str], refs: Sequence[str], script: str, level: str) -> list[float]:
    return [100.0 * (normalize(p, script, level) == normalize(r, script, level)) for p, r in zip(preds, refs)]


def bleu(preds: Sequence[str], refs: Sequence[str]) -> tuple[float, str]:
    import sacrebleu

    m = sacrebleu.metrics.BLEU()
    s = m.corpus_score(list(preds), [list(refs)])
    return float(s.score), str(m.get_signature())


def chrf(preds: Sequence[str], refs: Sequence[str]) -> tuple[float, str]:
    import sacrebleu

    m = sacrebleu.metrics.CHRF()
    s = m.corpus_score(list(preds), [list(refs)])
    return float(s.score), str(m.get_signature())


def bits_per_byte(lls: Sequence[float], n_bytes: Sequence[int]) -> float:
    b = sum(n_bytes)
    return float("nan") if b == 0 else -sum(lls) / (math.log(2) * b)


def perplexity(lls: Sequence[float], n_tokens: Sequence[int]) -> float:
    n = sum(n_tokens)
    return float("nan") if n == 0 else math.exp(-sum(lls) / n)
