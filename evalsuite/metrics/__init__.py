"""Metrics: small pure functions over per-example predictions (see docs/metrics.md).

Each metric's facts (direction, scale, baseline family) live in ``registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class MetricValue:
    """A metric's value with what is needed to read it."""

    name: str
    value: float | None
    """None when undefined (reported with ``flag``)."""
    higher_is_better: bool
    signature: str
    """How it was computed: ``metric|options|prompt|backend|version``."""
    flag: str | None = None
    stderr: float | None = None
    """Bootstrap standard error (seeded; clusters resampled together)."""
    ci: tuple[float, float] | None = None
    """95% bootstrap percentile interval."""
    baseline: float | None = None
    """Trivial baseline on the metric's scale (``metrics/registry.py`` says how it is chosen); None: not normalized."""
    baseline_kind: str | None = None
    """Which candidate the baseline is (``uniform random``, ``constant:NOT_HS``, ``derangement ...``)."""


def mc_predictions(lls: Sequence[Sequence[float]], choices: Sequence[Sequence[str]], mode: str) -> list[int]:
    """Argmax choice per example: raw log-likelihood (acc), or divided by characters (acc_norm, as lm-eval)
    or by UTF-8 bytes (acc_bytes). Arabic letters are two bytes, so the last two differ."""
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
