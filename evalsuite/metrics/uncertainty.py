"""Seeded, cluster-aware bootstrap: standard errors and 95% intervals for any metric."""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np


def seed_of(*parts: str) -> int:
    """A reproducible seed from names (task, prompt, metric)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:4], "big")


class Resampler:
    """Resamples clusters of examples (examples sharing material move together)."""

    def __init__(self, clusters: Sequence[str], n: int = 1000, seed: int = 0):
        keys: dict[str, int] = {}
        self.cidx = np.array([keys.setdefault(c, len(keys)) for c in clusters], dtype=np.int64)
        self.k = len(keys)
        self.counts = np.bincount(self.cidx, minlength=self.k).astype(float)
        rng = np.random.default_rng(seed)
        self.draws = rng.integers(0, self.k, size=(n, self.k)) if self.k else np.zeros((n, 0), dtype=np.int64)
        # how often each cluster is drawn in each resample, from one bincount over all resamples
        self.weights = (np.bincount((np.arange(n)[:, None] * self.k + self.draws).ravel(), minlength=n * self.k)
                        .reshape(n, self.k).astype(float) if self.k else None)
        self._members: list[np.ndarray] | None = None

    @property
    def members(self) -> list[np.ndarray]:
        """Example indices of each cluster (grouped once, by a stable sort)."""
        if self._members is None:
            order = np.argsort(self.cidx, kind="stable")
            self._members = np.split(order, np.cumsum(self.counts.astype(np.int64))[:-1]) if self.k else []
        return self._members

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Bootstrap distribution of the mean of per-example ``values``."""
        if self.weights is None:
            return np.array([])
        sums = np.bincount(self.cidx, weights=values, minlength=self.k)
        return (self.weights @ sums) / (self.weights @ self.counts)

    def sums(self, stats: np.ndarray) -> np.ndarray:
        """Bootstrap distribution of column sums of per-example ``stats`` (n_examples × k): one row per resample."""
        if self.weights is None:
            return np.zeros((0, stats.shape[1]))
        per_cluster = np.zeros((self.k, stats.shape[1]))
        np.add.at(per_cluster, self.cidx, stats)
        return self.weights @ per_cluster

    def stat(self, fn: Callable[[np.ndarray], float], n: int | None = None) -> np.ndarray:
        """Bootstrap distribution of ``fn(indices)`` (corpus-level metrics)."""
        out = []
        for d in self.draws[: n or len(self.draws)]:
            idx = np.concatenate([self.members[c] for c in d]) if len(d) else np.array([], dtype=np.int64)
            out.append(fn(idx))
        return np.asarray(out, dtype=float)


def summarize(dist: np.ndarray) -> tuple[float | None, tuple[float, float] | None]:
    """Standard error and 95% percentile interval of a bootstrap distribution."""
    d = dist[np.isfinite(dist)] if len(dist) else dist
    if len(d) < 2:
        return None, None
    lo, hi = np.quantile(d, [0.025, 0.975])
    return float(d.std(ddof=1)), (float(lo), float(hi))
